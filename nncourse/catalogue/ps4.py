"""Realistic wrong implementations of ps4 (mutants) and correct ones written differently."""

from nncourse.catalogue import Mutant, mutants_of

mutant = mutants_of("ps4")


DATA = "data_solution"
LOSS = "loss_solution"
RNN = "simple_rnn_solution"
TRAIN = "train_rnn_solution"
TORCH = "pytorch_rnn_solution"
BATCH = "batching_solution"

MUTANTS = [
    # generate_counting_ones_data
    mutant("window one step too long", DATA,
           "before[:, window_size:] = counts[:, :-window_size]",
           "before[:, window_size + 1:] = counts[:, :-window_size - 1]",
           {"counting_ones_data"},
           explanation=("The window counts one step more than window_size: the ones that left "
                        "it are subtracted one step late.")),
    mutant("target 1 for an odd count", DATA,
           "y = ((counts - before) % 2 == 0)", "y = ((counts - before) % 2 == 1)",
           {"counting_ones_data"},
           explanation=("The target is 1 when the number of ones in the window is odd; the task "
                        "asks for 1 when it is even.")),
    mutant("counting from the start of the sequence, not in the window", DATA,
           "y = ((counts - before) % 2 == 0)", "y = (counts % 2 == 0)",
           {"counting_ones_data"},
           explanation=("The parity is counted over the whole sequence so far, not over the "
                        "last window_size steps.")),
    mutant("window that leaves out the current step", DATA,
           """    before[:, window_size:] = counts[:, :-window_size]  # ones that left the window
    y = ((counts - before) % 2 == 0).astype(np.float32)""",
           """    before[:, window_size:] = counts[:, :-window_size]  # ones that left the window
    y = ((counts - before - X) % 2 == 0).astype(np.float32)""",
           {"counting_ones_data"},
           explanation=("The window leaves out the current step: it covers the window_size "
                        "steps before it.")),
    # sigmoid
    mutant("sigmoid by the overflowing formula", LOSS,
           """    n = np.clip(np.asarray(n, dtype=float), -500, 500)
    e = np.exp(-np.abs(n))  # never more than 1
    return np.where(n >= 0, 1.0 / (1.0 + e), e / (1.0 + e))""",
           """    return 1.0 / (1.0 + np.exp(-np.asarray(n, dtype=float)))""",
           {"sigmoid"},
           explanation=("The sigmoid computes an exponential that overflows (a RuntimeWarning) "
                        "for inputs of large magnitude.")),
    mutant("sigmoid as exp(n) / (1 + exp(n)) everywhere", LOSS,
           """    n = np.clip(np.asarray(n, dtype=float), -500, 500)
    e = np.exp(-np.abs(n))  # never more than 1
    return np.where(n >= 0, 1.0 / (1.0 + e), e / (1.0 + e))""",
           """    n = np.asarray(n, dtype=float)
    return np.exp(n) / (1.0 + np.exp(n))""",
           {"sigmoid"},
           undiagnosable=("its outputs on the checks' inputs are those of 'sigmoid by the "
                          "overflowing formula' (the same overflow warning), whose explanation "
                          "the feedback gives")),
    mutant("sigmoid clipped to [-10, 10]", LOSS,
           "n = np.clip(np.asarray(n, dtype=float), -500, 500)",
           "n = np.clip(np.asarray(n, dtype=float), -10, 10)",
           {"sigmoid"},
           explanation=("The input is clipped to [-10, 10], so the sigmoid of a large input is "
                        "not close enough to 0 or 1.")),
    mutant("sigmoid through tanh without halving", LOSS,
           """    n = np.clip(np.asarray(n, dtype=float), -500, 500)
    e = np.exp(-np.abs(n))  # never more than 1
    return np.where(n >= 0, 1.0 / (1.0 + e), e / (1.0 + e))""",
           """    return 0.5 * (1.0 + np.tanh(np.asarray(n, dtype=float)))""",
           {"sigmoid"},
           explanation="The formula (1 + tanh(n)) / 2 is σ(2n): tanh must be taken of n/2."),
    # binary_crossentropy_loss
    mutant("loss summed instead of averaged", LOSS,
           "return float(-np.mean(t * np.log(a) + (1 - t) * np.log(1 - a)))",
           "return float(-np.sum(t * np.log(a) + (1 - t) * np.log(1 - a)))",
           {"bce_loss"},
           explanation="The loss sums over the elements instead of averaging over them."),
    mutant("loss without the (1 - t) term", LOSS,
           "return float(-np.mean(t * np.log(a) + (1 - t) * np.log(1 - a)))",
           "return float(-np.mean(t * np.log(a)))",
           {"bce_loss"},
           explanation=("The loss keeps only t log a: the (1 - t) log(1 - a) term for targets "
                        "of 0 is missing.")),
    mutant("loss with the wrong sign", LOSS,
           "return float(-np.mean(t * np.log(a) + (1 - t) * np.log(1 - a)))",
           "return float(np.mean(t * np.log(a) + (1 - t) * np.log(1 - a)))",
           {"bce_loss"},
           explanation=("The loss lacks the leading minus sign, so it is negative and grows as "
                        "the predictions improve.")),
    mutant("loss without keeping a away from 0 and 1", LOSS,
           "a = np.clip(np.asarray(a, dtype=float).ravel(), eps, 1 - eps)",
           "a = np.asarray(a, dtype=float).ravel()",
           {"bce_loss"},
           explanation=("The loss takes the log of a as it is, so a probability of exactly 0 or "
                        "1 gives inf or nan.")),
    # binary_crossentropy_logit_gradient
    mutant("logit gradient t - a", LOSS,
           "return sigmoid(n) - np.asarray(t, dtype=float)",
           "return np.asarray(t, dtype=float) - sigmoid(n)",
           {"bce_gradient"},
           explanation="The gradient is t - σ(n): its sign is flipped."),
    mutant("logit gradient times the sigmoid's derivative again", LOSS,
           "return sigmoid(n) - np.asarray(t, dtype=float)",
           "return (sigmoid(n) - np.asarray(t, dtype=float)) * sigmoid(n) * (1 - sigmoid(n))",
           {"bce_gradient"},
           explanation=("The gradient is multiplied by σ'(n) once more; through the logit, the "
                        "sigmoid's derivative has already cancelled out.")),
    mutant("logit gradient n - t (sigmoid forgotten)", LOSS,
           "return sigmoid(n) - np.asarray(t, dtype=float)",
           "return np.asarray(n, dtype=float) - np.asarray(t, dtype=float)",
           {"bce_gradient"},
           explanation=("The gradient subtracts the target from the logit n itself; it is σ(n) "
                        "- t.")),
    # SimpleRNN.forward (backward works from forward's cache, so it is lost as well)
    mutant("output computed from the previous hidden state", RNN,
           """            a1 = np.tanh(self.LW_11 @ a1 + self.IW_11 @ p + self.b_1)
            n2 = self.LW_21 @ a1 + self.b_2""",
           """            n2 = self.LW_21 @ a1 + self.b_2
            a1 = np.tanh(self.LW_11 @ a1 + self.IW_11 @ p + self.b_1)""",
           {"rnn_forward", "rnn_backward"},
           explanation=("The output at each step is computed from the previous hidden state, "
                        "before it is updated with the step's input.")),
    mutant("hidden layer without its bias", RNN,
           "a1 = np.tanh(self.LW_11 @ a1 + self.IW_11 @ p + self.b_1)",
           "a1 = np.tanh(self.LW_11 @ a1 + self.IW_11 @ p)",
           {"rnn_forward", "rnn_backward"},
           explanation="The hidden layer's pre-activation leaves out the bias b_1."),
    mutant("given initial state ignored", RNN,
           "a1 = np.zeros((self.S1, 1)) if a1_prev is None else np.asarray(a1_prev, dtype=float).reshape(self.S1, 1)",
           "a1 = np.zeros((self.S1, 1))",
           {"rnn_forward"},
           explanation="The initial state a1_prev is ignored: the state always starts at zero."),
    mutant("hidden states without the initial one", RNN,
           "        columns, outputs, a1_states, n2_tot = [], [], [a1], []",
           "        columns, outputs, a1_states, n2_tot = [], [], [], []",
           {"rnn_forward", "rnn_backward"},
           explanation=("The list of hidden states leaves out the initial state, so it has T "
                        "entries instead of T + 1.")),
    # SimpleRNN.backward
    mutant("truncated BPTT: nothing flows back to earlier steps", RNN,
           "da1 = self.LW_21.T @ d2 + self.LW_11.T @ d1_next",
           "da1 = self.LW_21.T @ d2",
           {"rnn_backward"},
           explanation=("The hidden state's gradient leaves out what comes back from the next "
                        "step (LW_11ᵀ times its delta): nothing flows back through time.")),
    mutant("tanh derivative left out", RNN,
           "d1 = (1.0 - a1 ** 2) * da1", "d1 = da1",
           {"rnn_backward"},
           explanation=("The backward pass leaves out the tanh derivative (1 - a²) of the "
                        "hidden layer.")),
    mutant("gradients kept from the previous sequence", RNN,
           """        for gradient in (self.dLW_11, self.dIW_11, self.dLW_21, self.db_1, self.db_2):
            gradient.fill(0.0)
        d1_next""", """        d1_next""",
           {"rnn_backward"},
           explanation=("The gradients are not reset at the start of backward, so each call "
                        "adds to those of the previous sequence.")),
    mutant("recurrent weight gradient with the current state", RNN,
           "self.dLW_11 += d1 @ a1_before.T", "self.dLW_11 += d1 @ a1.T",
           {"rnn_backward"},
           explanation=("The recurrent weight's gradient uses the current hidden state where "
                        "the previous one (the input of LW_11 at that step) belongs.")),
    mutant("backward returns the total loss, not the mean", RNN,
           "        return total / steps\n", "        return total\n",
           {"rnn_backward"},
           explanation="backward returns the sum of the steps' losses instead of their mean."),
    # clip_gradients
    mutant("clipping the norm of all gradients together", RNN,
           """        for gradient in (self.dLW_11, self.dIW_11, self.dLW_21, self.db_1, self.db_2):
            norm = np.linalg.norm(gradient)
            if norm > max_norm:
                gradient *= max_norm / norm""",
           """        gradients = (self.dLW_11, self.dIW_11, self.dLW_21, self.db_1, self.db_2)
        norm = np.sqrt(sum(np.sum(g ** 2) for g in gradients))
        if norm > max_norm:
            for gradient in gradients:
                gradient *= max_norm / norm""",
           {"clip_gradients"},
           explanation=("The gradients are clipped by their joint norm; each one is to be "
                        "clipped by its own norm.")),
    mutant("clipping every entry to [-max_norm, max_norm]", RNN,
           """            norm = np.linalg.norm(gradient)
            if norm > max_norm:
                gradient *= max_norm / norm""",
           """            np.clip(gradient, -max_norm, max_norm, out=gradient)""",
           {"clip_gradients"},
           explanation=("Each entry is clipped to [-max_norm, max_norm]; clipping is to rescale "
                        "a gradient whose norm is too large.")),
    mutant("clipping at 5 whatever max_norm says", RNN,
           """            if norm > max_norm:
                gradient *= max_norm / norm""",
           """            if norm > 5.0:
                gradient *= 5.0 / norm""",
           {"clip_gradients"},
           explanation="Clipping uses 5 whatever max_norm it is given."),
    mutant("every gradient rescaled to max_norm", RNN,
           """            if norm > max_norm:
                gradient *= max_norm / norm""",
           """            if norm > 0:
                gradient *= max_norm / norm""",
           {"clip_gradients"},
           explanation=("Every gradient is rescaled to norm max_norm, small ones included; only "
                        "those above it are to shrink.")),
    # update_parameters
    mutant("update climbs the gradient", RNN,
           "self.LW_11 -= self.learning_rate * self.dLW_11",
           "self.LW_11 += self.learning_rate * self.dLW_11",
           {"update_parameters"},
           explanation=("The update adds the learning rate times a gradient: it climbs the "
                        "loss.")),
    mutant("update forgets the output bias", RNN,
           "        self.b_2 -= self.learning_rate * self.db_2\n", "",
           {"update_parameters"},
           explanation="The update never changes the output bias b_2."),
    mutant("update with a fixed learning rate", RNN,
           "self.IW_11 -= self.learning_rate * self.dIW_11",
           "self.IW_11 -= 0.01 * self.dIW_11",
           {"update_parameters"},
           explanation="One of the updates uses a fixed step instead of self.learning_rate."),
    # train_rnn
    mutant("training updates before clipping", TRAIN,
           """            rnn.clip_gradients()
            rnn.update_parameters()""",
           """            rnn.update_parameters()
            rnn.clip_gradients()""",
           {"train_rnn"},
           explanation=("Each step updates the parameters before clipping the gradients, so "
                        "clipping has no effect on the step.")),
    mutant("training never clips", TRAIN,
           "            rnn.clip_gradients()\n", "",
           {"train_rnn"},
           explanation="The training loop never clips the gradients."),
    mutant("epoch loss summed, not averaged", TRAIN,
           "losses.append(total / len(sequences))", "losses.append(total)",
           {"train_rnn"},
           explanation="The epoch's loss is the sum over the sequences instead of their mean."),
    mutant("every sequence trained with the first sequence's targets", TRAIN,
           "total += rnn.backward(outputs, target, cache)",
           "total += rnn.backward(outputs, targets[0], cache)",
           {"train_rnn"},
           explanation=("Every sequence is trained against the first sequence's targets instead "
                        "of its own.")),
    # SimplePyTorchRNN.forward
    mutant("torch output from the previous hidden state", TORCH,
           """            a1 = torch.tanh(self.IW_11(inputs[:, t]) + self.LW_11(a1))
            states.append(a1)
            outputs.append(torch.sigmoid(self.LW_21(a1)))""",
           """            outputs.append(torch.sigmoid(self.LW_21(a1)))
            a1 = torch.tanh(self.IW_11(inputs[:, t]) + self.LW_11(a1))
            states.append(a1)""",
           {"pytorch_forward"},
           explanation=("The output at each step is computed from the previous hidden state, "
                        "before the update with the step's input.")),
    mutant("torch hidden states without the initial one", TORCH,
           "states, outputs = [a1], []", "states, outputs = [], []",
           {"pytorch_forward"},
           explanation=("The returned states leave out the initial state, so there are T of "
                        "them instead of T + 1.")),
    mutant("torch output without the sigmoid", TORCH,
           "outputs.append(torch.sigmoid(self.LW_21(a1)))", "outputs.append(self.LW_21(a1))",
           {"pytorch_forward"},
           explanation="The outputs are the raw pre-activations: the sigmoid is missing."),
    mutant("torch network without recurrence", TORCH,
           "a1 = torch.tanh(self.IW_11(inputs[:, t]) + self.LW_11(a1))",
           "a1 = torch.tanh(self.IW_11(inputs[:, t]) + self.LW_11(states[0]))",
           {"pytorch_forward"},
           explanation=("Every step's state is computed from the initial state instead of the "
                        "previous step's: there is no recurrence.")),
    # compute_loss
    mutant("padding counted in the loss", TORCH,
           """        if mask is None:
            return losses.mean()""",
           """        if True:
            return losses.mean()""",
           {"pytorch_loss"},
           explanation="The mask is never used, so the padded steps count in the loss."),
    mutant("masked loss divided by every step, padding included", TORCH,
           "return (losses * mask).sum() / mask.sum()",
           "return (losses * mask).mean()",
           {"pytorch_loss"},
           explanation=("The masked loss is divided by every step, padding included, instead of "
                        "by the number of real steps.")),
    mutant("masked loss as the mean of the sequences' means", TORCH,
           "return (losses * mask).sum() / mask.sum()",
           "return ((losses * mask).sum(dim=1) / mask.sum(dim=1)).mean()",
           {"pytorch_loss"},
           explanation=("The loss averages each sequence's mean, which weighs short sequences' "
                        "steps more than long ones'; it is the mean over all real steps.")),
    # train_step
    mutant("train_step never clears the gradients", TORCH,
           "        self.optimizer.zero_grad()\n", "",
           {"pytorch_train_step"},
           explanation=("train_step never zeroes the gradients, so they accumulate from one "
                        "step to the next.")),
    mutant("train_step steps before the backward pass", TORCH,
           """        loss.backward()
        for parameter in self.parameters():
            nn.utils.clip_grad_norm_(parameter, max_norm=5.0)
        self.optimizer.step()""",
           """        self.optimizer.step()
        loss.backward()""",
           {"pytorch_train_step"},
           explanation=("The optimiser steps before the backward pass, with the gradients of "
                        "the previous batch.")),
    mutant("train_step leaves the mask out of the loss", TORCH,
           "loss = self.compute_loss(outputs, targets, mask)",
           "loss = self.compute_loss(outputs, targets)",
           {"pytorch_train_step"},
           explanation="train_step computes the loss without the mask, so padding counts."),
    # collate_sequences
    mutant("padding before the sequences", BATCH,
           """        padded_inputs[row, :len(sequence)] = sequence
        padded_targets[row, :len(label)] = label
        mask[row, :len(sequence)] = 1.0""",
           """        padded_inputs[row, longest - len(sequence):] = sequence
        padded_targets[row, longest - len(label):] = label
        mask[row, longest - len(sequence):] = 1.0""",
           {"collate_sequences"},
           explanation="The padding is put before each sequence instead of after it."),
    mutant("a mask of ones", BATCH,
           "    mask = torch.zeros(batch, longest)", "    mask = torch.ones(batch, longest)",
           {"collate_sequences"},
           explanation="The mask is 1 everywhere, padding included."),
    Mutant("sequences cut to the shortest", [
        (BATCH, "max(len(s) for s in inputs), inputs[0]", "min(len(s) for s in inputs), inputs[0]"),
        (BATCH, """        padded_inputs[row, :len(sequence)] = sequence
        padded_targets[row, :len(label)] = label
        mask[row, :len(sequence)] = 1.0""", """        padded_inputs[row] = sequence[:longest]
        padded_targets[row] = label[:longest]
        mask[row] = 1.0""")], frozenset({"ps4.collate_sequences"}),
           explanation=("Sequences are cut to the shortest one instead of padded to the "
                        "longest.")),
    mutant("inputs collated as float64", BATCH,
           "    padded_inputs = torch.zeros(batch, longest, width)",
           "    padded_inputs = torch.zeros(batch, longest, width, dtype=torch.float64)",
           {"collate_sequences"},
           explanation="The padded inputs are float64; the network's weights are float32."),
    # train_pytorch_rnn
    mutant("batches never shuffled", BATCH,
           "batch_size=batch_size, shuffle=True)", "batch_size=batch_size)",
           {"train_pytorch_rnn"},
           explanation=("The DataLoader does not shuffle, so every epoch sees the batches in "
                        "the same order.")),
    mutant("batch_size ignored: one batch of everything", BATCH,
           "batch_size=batch_size, shuffle=True)", "batch_size=len(sequences), shuffle=True)",
           {"train_pytorch_rnn"},
           explanation="batch_size is ignored: all sequences go into one batch."),
    mutant("epoch loss summed over the batches", BATCH,
           "losses.append(sum(batch_losses) / len(batch_losses))",
           "losses.append(sum(batch_losses))",
           {"train_pytorch_rnn"},
           explanation="The epoch's loss sums the batches' losses instead of averaging them."),
    mutant("train_step called without the mask", BATCH,
           "rnn.train_step(inputs, labels, mask) for", "rnn.train_step(inputs, labels) for",
           {"train_pytorch_rnn"},
           explanation="train_step is called without the mask, so padding counts in the loss."),
]

# Correct solutions written differently: each must pass every check.
EQUIVALENT = [
    (DATA, """    X = np.random.randint(0, 2, size=(num_samples, seq_length)).astype(np.float32)
    counts = np.cumsum(X, axis=1)
    before = np.zeros_like(counts)
    before[:, window_size:] = counts[:, :-window_size]  # ones that left the window
    y = ((counts - before) % 2 == 0).astype(np.float32)
    return X, y""", """    X = np.random.randint(0, 2, size=(num_samples, seq_length)).astype(np.float32)
    y = np.zeros((num_samples, seq_length), dtype=np.float32)
    for i in range(num_samples):
        for t in range(seq_length):
            ones = np.sum(X[i, max(0, t - window_size + 1):t + 1])
            y[i, t] = 1.0 if ones % 2 == 0 else 0.0
    return X, y"""),
    (LOSS, """    n = np.clip(np.asarray(n, dtype=float), -500, 500)
    e = np.exp(-np.abs(n))  # never more than 1
    return np.where(n >= 0, 1.0 / (1.0 + e), e / (1.0 + e))""",
     """    n = np.asarray(n, dtype=float)
    return np.exp(-np.logaddexp(0.0, -n))"""),
    (LOSS, """    eps = 1e-12
    a = np.clip(np.asarray(a, dtype=float).ravel(), eps, 1 - eps)
    t = np.asarray(t, dtype=float).ravel()
    return float(-np.mean(t * np.log(a) + (1 - t) * np.log(1 - a)))""",
     """    a = np.clip(np.array(a, dtype=float).flatten(), 1e-15, 1 - 1e-15)
    t = np.array(t, dtype=float).flatten()
    total = 0.0
    for p, target in zip(a, t):
        total -= np.log(p) if target == 1 else np.log(1 - p)
    return total / len(a)"""),
    (RNN, """        for t in reversed(range(steps)):
            target = np.asarray(targets[t], dtype=float).reshape(self.S2, 1)
            total += binary_crossentropy_loss(outputs[t], target)
            d2 = binary_crossentropy_logit_gradient(n2_tot[t], target)
            a1, a1_before = a1_states[t + 1], a1_states[t]
            self.dLW_21 += d2 @ a1.T
            self.db_2 += d2
            da1 = self.LW_21.T @ d2 + self.LW_11.T @ d1_next
            d1 = (1.0 - a1 ** 2) * da1
            self.dLW_11 += d1 @ a1_before.T
            self.dIW_11 += d1 @ inputs[t].T
            self.db_1 += d1
            d1_next = d1
        return total / steps""",
     """        d2s = [binary_crossentropy_logit_gradient(n2_tot[t], np.reshape(targets[t], (-1, 1)))
               for t in range(steps)]
        total = sum(binary_crossentropy_loss(outputs[t], np.reshape(targets[t], (-1, 1)))
                    for t in range(steps))
        d1s = [None] * steps
        for t in range(steps - 1, -1, -1):
            da1 = np.dot(self.LW_21.T, d2s[t])
            if t + 1 < steps:
                da1 = da1 + np.dot(self.LW_11.T, d1s[t + 1])
            d1s[t] = da1 * (1 - a1_states[t + 1] * a1_states[t + 1])
        self.dLW_21 = sum(np.outer(d2s[t], a1_states[t + 1]) for t in range(steps))
        self.db_2 = sum(d2s)
        self.dLW_11 = sum(np.outer(d1s[t], a1_states[t]) for t in range(steps))
        self.dIW_11 = sum(np.outer(d1s[t], inputs[t]) for t in range(steps))
        self.db_1 = sum(d1s)
        return total / steps"""),
    (RNN, """        for gradient in (self.dLW_11, self.dIW_11, self.dLW_21, self.db_1, self.db_2):
            norm = np.linalg.norm(gradient)
            if norm > max_norm:
                gradient *= max_norm / norm""",
     """        for name in ("dLW_11", "dIW_11", "dLW_21", "db_1", "db_2"):
            gradient = getattr(self, name)
            norm = np.sqrt(np.sum(gradient ** 2))
            setattr(self, name, gradient * min(1.0, max_norm / max(norm, 1e-300)))"""),
    (RNN, """        self.LW_11 -= self.learning_rate * self.dLW_11
        self.IW_11 -= self.learning_rate * self.dIW_11
        self.LW_21 -= self.learning_rate * self.dLW_21
        self.b_1 -= self.learning_rate * self.db_1
        self.b_2 -= self.learning_rate * self.db_2""",
     """        for name in ("LW_11", "IW_11", "LW_21", "b_1", "b_2"):
            setattr(self, name, getattr(self, name) - self.learning_rate * getattr(self, "d" + name))"""),
    (TORCH, """        batch, steps, _ = inputs.shape
        a1 = inputs.new_zeros(batch, self.S1) if a1_prev is None else a1_prev
        states, outputs = [a1], []
        for t in range(steps):
            a1 = torch.tanh(self.IW_11(inputs[:, t]) + self.LW_11(a1))
            states.append(a1)
            outputs.append(torch.sigmoid(self.LW_21(a1)))
        return torch.stack(outputs, dim=1), torch.stack(states, dim=1)""",
     """        if a1_prev is None:
            a1_prev = torch.zeros(inputs.size(0), self.S1, device=inputs.device)
        a1_tot = [a1_prev.unsqueeze(1)]
        for t in range(inputs.size(1)):
            a1_prev = torch.tanh(self.LW_11(a1_prev) + self.IW_11(inputs[:, t, :]))
            a1_tot.append(a1_prev.unsqueeze(1))
        a1_tot = torch.cat(a1_tot, dim=1)
        return torch.sigmoid(self.LW_21(a1_tot[:, 1:])), a1_tot"""),
    (TORCH, """        losses = self.criterion(outputs, targets.reshape(outputs.shape)).mean(dim=2)
        if mask is None:
            return losses.mean()
        mask = mask.reshape(losses.shape).to(losses.dtype)
        return (losses * mask).sum() / mask.sum()""",
     """        targets = targets.view_as(outputs)
        if mask is None:
            return nn.functional.binary_cross_entropy(outputs, targets)
        keep = mask.view(outputs.shape[:2]).bool()
        return nn.functional.binary_cross_entropy(outputs[keep], targets[keep])"""),
    (BATCH, """    inputs = [torch.as_tensor(np.asarray(s, dtype=np.float32)) for s in sequences]
    inputs = [s.reshape(len(s), -1) for s in inputs]
    labels = [torch.as_tensor(np.asarray(t, dtype=np.float32)).reshape(-1, 1) for t in targets]
    batch, longest, width = len(inputs), max(len(s) for s in inputs), inputs[0].shape[1]
    padded_inputs = torch.zeros(batch, longest, width)
    padded_targets = torch.zeros(batch, longest, 1)
    mask = torch.zeros(batch, longest)
    for row, (sequence, label) in enumerate(zip(inputs, labels)):
        padded_inputs[row, :len(sequence)] = sequence
        padded_targets[row, :len(label)] = label
        mask[row, :len(sequence)] = 1.0
    return padded_inputs, padded_targets, mask""",
     """    from torch.nn.utils.rnn import pad_sequence
    xs = [torch.tensor(np.array(s), dtype=torch.float32) for s in sequences]
    xs = [x.view(x.shape[0], -1) for x in xs]
    ys = [torch.tensor(np.array(t), dtype=torch.float32).view(-1, 1) for t in targets]
    lengths = torch.tensor([len(x) for x in xs])
    mask = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).float()
    return pad_sequence(xs, batch_first=True), pad_sequence(ys, batch_first=True), mask"""),
    (BATCH, """    loader = DataLoader(TensorDataset(*collate_sequences(sequences, targets)),
                        batch_size=batch_size, shuffle=True)
    losses = []
    for epoch in range(epochs):
        batch_losses = [rnn.train_step(inputs, labels, mask) for inputs, labels, mask in loader]
        losses.append(sum(batch_losses) / len(batch_losses))""",
     """    inputs, labels, mask = collate_sequences(sequences, targets)
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(inputs))
        epoch_loss, batches = 0.0, 0
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            epoch_loss += rnn.train_step(inputs[chosen], labels[chosen], mask[chosen])
            batches += 1
        losses.append(epoch_loss / batches)"""),
]
