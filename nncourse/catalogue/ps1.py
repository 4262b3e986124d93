"""Realistic wrong implementations of ps1 (mutants) and correct ones written differently.

Each mutant edits the reference solution (taken from source/ps1/ps1.ipynb) the way a student
might get it wrong, and names exactly the checks it must fail: every other check must still
pass, so one mistake costs the points of the behaviour it breaks and no others.
"""

from nncourse.catalogue import mutants_of

mutant = mutants_of("ps1")


LINEAR_UPDATE = """        input_gradient = output_gradient @ self.W.T
        self.W = self.W - lr * (input_array.T @ output_gradient)"""

MUTANTS = [
    # Linear.forward
    mutant("linear forward without bias", "linear_solution",
           "return input_array @ self.W + self.b", "return input_array @ self.W",
           {"linear_forward"},
           explanation=("The forward pass returns XW without adding the bias b, so each unit's "
                        "output is off by that unit's bias.")),
    mutant("linear forward adds the bias as a column", "linear_solution",
           "return input_array @ self.W + self.b", "return input_array @ self.W + self.b.T",
           {"linear_forward"},
           explanation=("The bias is added as a column (b transposed) instead of as a row: it "
                        "is broadcast the wrong way, so the shapes only work out by accident "
                        "and the values are wrong.")),
    mutant("linear forward adds the bias of the first unit only", "linear_solution",
           "return input_array @ self.W + self.b", "return input_array @ self.W + self.b[0, 0]",
           {"linear_forward"},
           explanation=("Only the first unit's bias is added, to every unit: the other units' "
                        "biases are never used.")),
    # Linear.backward: the input gradient
    mutant("input gradient computed with the updated W", "linear_solution",
           LINEAR_UPDATE,
           """        self.W = self.W - lr * (input_array.T @ output_gradient)
        input_gradient = output_gradient @ self.W.T""",
           {"linear_backward"},
           explanation=("The input gradient is computed after W has been updated, with the new "
                        "weights; it must use the weights of the forward pass.")),
    mutant("input gradient uses W instead of its transpose", "linear_solution",
           "input_gradient = output_gradient @ self.W.T",
           "input_gradient = output_gradient @ self.W",
           # raises for non-square layers, before the update: the step is lost as well
           {"linear_backward", "linear_update"},
           explanation=("The input gradient multiplies the output gradient by W rather than by "
                        "its transpose, which fails or gives the wrong values as soon as the "
                        "layer is not square.")),
    mutant("input gradient averaged over the batch", "linear_solution",
           "input_gradient = output_gradient @ self.W.T",
           "input_gradient = output_gradient @ self.W.T / len(input_array)",
           {"linear_backward"},
           explanation=("The input gradient is divided by the batch size: each sample's "
                        "gradient is its own, not an average over the batch.")),
    # Linear.backward: the update
    mutant("bias gradient averaged instead of summed", "linear_solution",
           "self.b = self.b - lr * output_gradient.sum(axis=0, keepdims=True)",
           "self.b = self.b - lr * output_gradient.mean(axis=0, keepdims=True)",
           {"linear_update"},
           explanation=("The bias gradient is the mean of the output gradient over the batch; "
                        "every sample contributes to the loss, so its contributions add up "
                        "rather than average out.")),
    mutant("weights moved up the gradient", "linear_solution",
           "self.W = self.W - lr * (input_array.T @ output_gradient)",
           "self.W = self.W + lr * (input_array.T @ output_gradient)",
           {"linear_update"},
           explanation=("The weight update adds lr times the gradient: that climbs the loss "
                        "instead of descending it.")),
    mutant("fixed learning rate instead of the argument", "linear_solution",
           "self.W = self.W - lr * (input_array.T @ output_gradient)",
           "self.W = self.W - 0.05 * (input_array.T @ output_gradient)",
           {"linear_update"},
           explanation=("The update uses a fixed step size instead of the lr it is given, so "
                        "any other learning rate is ignored.")),
    mutant("bias gradient summed over the units", "linear_solution",
           "self.b = self.b - lr * output_gradient.sum(axis=0, keepdims=True)",
           "self.b = self.b - lr * output_gradient.sum(axis=1).sum()",
           {"linear_update"},
           explanation=("The bias gradient sums over the units (and the batch) into one number, "
                        "so every unit's bias moves by the same amount.")),
    # ReLU
    mutant("ReLU forward is the absolute value", "relu_solution",
           "return np.maximum(input_array, 0.0)", "return np.abs(input_array)",
           {"relu_forward"},
           explanation=("The forward pass returns the absolute value: negative inputs come out "
                        "positive instead of 0.")),
    mutant("ReLU forward returns the mask", "relu_solution",
           "return np.maximum(input_array, 0.0)", "return (input_array > 0).astype(float)",
           {"relu_forward"},
           explanation=("The forward pass returns 1 where the input is positive and 0 elsewhere "
                        "(the derivative), not the input's positive part.")),
    mutant("ReLU forward is leaky", "relu_solution",
           "return np.maximum(input_array, 0.0)", "return np.maximum(input_array, 0.01 * input_array)",
           {"relu_forward"},
           explanation=("The forward pass keeps a small slope for negative inputs (a leaky "
                        "ReLU): a ReLU sets them to 0.")),
    mutant("ReLU backward masked on the gradient's sign", "relu_solution",
           "return output_gradient * (input_array > 0)",
           "return output_gradient * (output_gradient > 0)",
           {"relu_backward"},
           explanation=("The backward pass keeps the gradient where the gradient is positive; "
                        "the mask must come from where the layer's input was positive.")),
    mutant("ReLU backward passes the gradient at zero", "relu_solution",
           "return output_gradient * (input_array > 0)",
           "return output_gradient * (input_array >= 0)",
           {"relu_backward"},
           explanation=("The backward pass lets the gradient through where the input is exactly "
                        "0; the notebook takes the derivative at 0 to be 0.")),
    mutant("ReLU backward returns the mask only", "relu_solution",
           "return output_gradient * (input_array > 0)",
           "return (input_array > 0).astype(float)",
           {"relu_backward"},
           explanation=("The backward pass returns the derivative mask without multiplying it "
                        "by the output gradient.")),
    # Sigmoid (backward calls forward, so a wrong forward breaks both)
    mutant("sigmoid by the overflowing formula", "sigmoid_solution",
           """        z = np.exp(-np.abs(input_array))
        return np.where(input_array >= 0, 1.0 / (1.0 + z), z / (1.0 + z))""",
           "        return 1.0 / (1.0 + np.exp(-input_array))",
           {"sigmoid_forward", "sigmoid_backward"},
           explanation=("The sigmoid is computed as 1 / (1 + exp(-x)), which overflows (with a "
                        "warning) for large negative inputs.")),
    mutant("sigmoid with np.where over both overflowing branches", "sigmoid_solution",
           """        z = np.exp(-np.abs(input_array))
        return np.where(input_array >= 0, 1.0 / (1.0 + z), z / (1.0 + z))""",
           """        return np.where(input_array >= 0, 1.0 / (1.0 + np.exp(-input_array)),
                        np.exp(input_array) / (1.0 + np.exp(input_array)))""",
           {"sigmoid_forward", "sigmoid_backward"},
           undiagnosable=("its outputs on the checks' inputs are those of 'sigmoid by the "
                          "overflowing formula' (the same overflow warning), whose explanation "
                          "the feedback gives")),
    mutant("sigmoid branches swapped", "sigmoid_solution",
           "np.where(input_array >= 0, 1.0 / (1.0 + z), z / (1.0 + z))",
           "np.where(input_array >= 0, z / (1.0 + z), 1.0 / (1.0 + z))",
           # s(1 - s) is the same for s and 1 - s, so backward stays right
           {"sigmoid_forward"},
           explanation=("The two branches of the stable formula are swapped: positive inputs "
                        "get the formula meant for negative ones and the other way round.")),
    mutant("sigmoid derivative taken at the input", "sigmoid_solution",
           "return output_gradient * s * (1.0 - s)",
           "return output_gradient * s * (1.0 - input_array)",
           {"sigmoid_backward"},
           explanation=("The derivative uses the input x where the sigmoid's output belongs: it "
                        "is s(x)(1 - s(x)).")),
    mutant("sigmoid backward ignores the output gradient", "sigmoid_solution",
           "return output_gradient * s * (1.0 - s)", "return s * (1.0 - s)",
           {"sigmoid_backward"},
           explanation=("The backward pass returns the sigmoid's derivative without multiplying "
                        "it by the output gradient.")),
    mutant("sigmoid backward applies the sigmoid twice", "sigmoid_solution",
           "s = self.forward(input_array)", "s = self.forward(self.forward(input_array))",
           {"sigmoid_backward"},
           explanation=("The backward pass takes the sigmoid of the sigmoid of the input before "
                        "computing the derivative.")),
    # MSE
    mutant("MSE summed instead of averaged", "mse_solution",
           "return float(np.mean((predicted_y - y) ** 2))",
           "return float(np.sum((predicted_y - y) ** 2))",
           {"mse_forward"},
           explanation=("The loss sums the squared errors instead of averaging them over the "
                        "batch.")),
    mutant("MSE of absolute errors", "mse_solution",
           "return float(np.mean((predicted_y - y) ** 2))",
           "return float(np.mean(np.abs(predicted_y - y)))",
           {"mse_forward"},
           explanation="The loss averages the absolute errors rather than the squared errors."),
    mutant("MSE halved", "mse_solution",
           "return float(np.mean((predicted_y - y) ** 2))",
           "return float(np.mean((predicted_y - y) ** 2) / 2)",
           {"mse_forward"},
           explanation=("The loss is half the mean squared error: the notebook's MSE has no "
                        "factor 1/2.")),
    mutant("MSE gradient not divided by the batch", "mse_solution",
           "return 2.0 * (predicted_y - y) / predicted_y.shape[0]",
           "return 2.0 * (predicted_y - y)",
           {"mse_backward"},
           explanation=("The gradient is 2(prediction - y) without dividing by the batch size, "
                        "although the loss is a mean.")),
    mutant("MSE gradient with the sign flipped", "mse_solution",
           "return 2.0 * (predicted_y - y) / predicted_y.shape[0]",
           "return 2.0 * (y - predicted_y) / predicted_y.shape[0]",
           {"mse_backward"},
           explanation=("The gradient has the wrong sign: it points from the prediction towards "
                        "the target, so gradient descent would move away from the target.")),
    mutant("MSE gradient without the factor 2", "mse_solution",
           "return 2.0 * (predicted_y - y) / predicted_y.shape[0]",
           "return (predicted_y - y) / predicted_y.shape[0]",
           {"mse_backward"},
           explanation=("The gradient leaves out the factor 2 that comes from differentiating "
                        "the square.")),
    # SimpleNN
    mutant("backward through the layers first to last", "simplenn_solution",
           "zip(reversed(self.layers), reversed(self.inputs))",
           "zip(self.layers, self.inputs)",
           {"simplenn"},
           explanation=("The backward pass goes through the layers from the first to the last; "
                        "the gradient must flow from the loss back to the first layer.")),
    mutant("layers' backward given their outputs", "simplenn_solution",
           """            self.inputs[index] = current
            current = layer(current)""",
           """            current = layer(current)
            self.inputs[index] = current""",
           {"simplenn"},
           explanation=("Each layer's remembered input is taken after the layer has run, so "
                        "backward gets the layer's output instead of its input.")),
    mutant("the loss gradient given to every layer", "simplenn_solution",
           """            if layer.with_weights:
                gradient = layer.backward(layer_input, gradient, self.lr)
            else:
                gradient = layer.backward(layer_input, gradient)""",
           """            if layer.with_weights:
                layer.backward(layer_input, gradient, self.lr)
            else:
                layer.backward(layer_input, gradient)""",
           {"simplenn"},
           explanation=("Every layer receives the loss's gradient: the gradient that a layer's "
                        "backward returns is never passed on to the layer before it.")),
    mutant("weighted layers stepped with their default learning rate", "simplenn_solution",
           "gradient = layer.backward(layer_input, gradient, self.lr)",
           "gradient = layer.backward(layer_input, gradient)",
           {"simplenn"},
           explanation=("Layers with weights are called without the network's learning rate, so "
                        "they step with their own default.")),
    mutant("loss_value never stored", "simplenn_solution",
           "self.loss_value = self.loss(self.output, y)",
           "loss_value = self.loss(self.output, y)",
           {"simplenn"},
           explanation=("The loss is computed but not stored in self.loss_value, so the network "
                        "never reports it.")),
    # LinearL2
    mutant("L2 gradient without the factor 2", "linear_l2_solution",
           "+ 2 * self.l2_lambda * self.W", "+ self.l2_lambda * self.W",
           {"linear_l2"},
           explanation="The penalty's gradient is λW; the derivative of λ‖W‖² is 2λW."),
    mutant("L2 penalty also applied to the bias", "linear_l2_solution",
           "self.b = self.b - lr * output_gradient.sum(axis=0, keepdims=True)",
           "self.b = self.b - lr * (output_gradient.sum(axis=0, keepdims=True) + 2 * self.l2_lambda * self.b)",
           {"linear_l2"},
           explanation=("The penalty's gradient is also added to the bias update; only the "
                        "weights are regularised.")),
    mutant("L2 term added to the input gradient", "linear_l2_solution",
           "input_gradient = output_gradient @ self.W.T",
           "input_gradient = output_gradient @ self.W.T + 2 * self.l2_lambda * input_array",
           {"linear_l2"},
           explanation=("A penalty term is added to the input gradient; the penalty does not "
                        "depend on the input, so the input gradient is that of a plain linear "
                        "layer.")),
    mutant("L2 term with the wrong sign", "linear_l2_solution",
           "+ 2 * self.l2_lambda * self.W", "- 2 * self.l2_lambda * self.W",
           {"linear_l2"},
           explanation=("The penalty's gradient is subtracted instead of added, which pushes "
                        "the weights to grow.")),
    # CrossEntropyLoss
    mutant("cross-entropy forward without the max shift", "cross_entropy_solution",
           """        shifted = predicted_y - predicted_y.max(axis=1, keepdims=True)
        log_probabilities""",
           """        shifted = predicted_y
        log_probabilities""",
           {"cross_entropy_forward"},
           explanation=("The loss exponentiates the raw logits: for large logits exp overflows "
                        "and the loss becomes inf or nan.")),
    mutant("cross-entropy summed over the batch", "cross_entropy_solution",
           "return float(-(y * log_probabilities).sum() / predicted_y.shape[0])",
           "return float(-(y * log_probabilities).sum())",
           {"cross_entropy_forward"},
           explanation="The loss sums over the batch instead of averaging over it."),
    mutant("cross-entropy softmax over the batch axis", "cross_entropy_solution",
           """        shifted = predicted_y - predicted_y.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))""",
           """        shifted = predicted_y - predicted_y.max(axis=0, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))""",
           {"cross_entropy_forward"},
           explanation=("The softmax is taken over the batch (axis 0) instead of over each "
                        "sample's classes (axis 1).")),
    mutant("cross-entropy gradient not divided by the batch", "cross_entropy_solution",
           "return (probabilities - y) / predicted_y.shape[0]",
           "return probabilities - y",
           {"cross_entropy_backward"},
           explanation=("The gradient is p - y without dividing by the batch size, although the "
                        "loss is a mean.")),
    mutant("cross-entropy gradient without the max shift", "cross_entropy_solution",
           "shifted = np.exp(predicted_y - predicted_y.max(axis=1, keepdims=True))",
           "shifted = np.exp(predicted_y)",
           {"cross_entropy_backward"},
           explanation=("The gradient exponentiates the raw logits, which overflows for large "
                        "logits (nan or a warning).")),
    mutant("cross-entropy gradient with the sign flipped", "cross_entropy_solution",
           "return (probabilities - y) / predicted_y.shape[0]",
           "return (y - probabilities) / predicted_y.shape[0]",
           {"cross_entropy_backward"},
           explanation="The gradient is (y - p)/N: its sign is flipped."),
    # Conv1d
    mutant("convolution with the kernel flipped", "conv1d_solution",
           "output += padded[:, k:k + length] * self.W[0, k]",
           "output += padded[:, k:k + length] * self.W[0, width - 1 - k]",
           {"conv1d_forward"},
           explanation=("The forward pass slides the kernel reversed (a true convolution); the "
                        "notebook's layer does not flip it (a cross-correlation).")),
    mutant("convolution without the bias", "conv1d_solution",
           "return output + self.b", "return output",
           {"conv1d_forward"},
           explanation="The forward pass does not add the bias b."),
    mutant("convolution without the padding", "conv1d_solution",
           """        padded = np.pad(input_array, ((0, 0), (self.pad_length, self.pad_length)))
        width = self.W.shape[1]
        length = padded.shape[1] - width + 1""",
           """        padded = input_array
        width = self.W.shape[1]
        length = padded.shape[1] - width + 1""",
           {"conv1d_forward"},
           explanation=("The forward pass runs on the unpadded input, so the output is shorter "
                        "than it should be.")),
    mutant("convolution input gradient keeps the padded columns", "conv1d_solution",
           "return padded_gradient[:, self.pad_length:padded.shape[1] - self.pad_length]",
           "return padded_gradient",
           {"conv1d_backward"},
           explanation=("The input gradient keeps the columns of the padding; the padding is "
                        "not an input, so its columns are dropped from the gradient returned.")),
    mutant("convolution kernel gradient averaged over the batch", "conv1d_solution",
           "weight_gradient[0, k] = np.sum(output_gradient * padded[:, k:k + length])",
           "weight_gradient[0, k] = np.sum(output_gradient * padded[:, k:k + length]) / len(input_array)",
           {"conv1d_backward"},
           explanation=("The kernel gradient is divided by the batch size; the contributions of "
                        "the samples add up.")),
    mutant("convolution input gradient with the updated kernel", "conv1d_solution",
           """        for k in range(width):
            padded_gradient[:, k:k + length] += output_gradient * self.W[0, k]
            weight_gradient[0, k] = np.sum(output_gradient * padded[:, k:k + length])
        self.W = self.W - lr * weight_gradient""",
           """        for k in range(width):
            weight_gradient[0, k] = np.sum(output_gradient * padded[:, k:k + length])
        self.W = self.W - lr * weight_gradient
        for k in range(width):
            padded_gradient[:, k:k + length] += output_gradient * self.W[0, k]""",
           {"conv1d_backward"},
           explanation=("The input gradient is computed with the kernel after its update; it "
                        "must use the kernel of the forward pass.")),
]

# Correct solutions written another way (other operators, loops, in-place updates, other
# formulas): each must score full marks.
EQUIVALENT = [
    ("linear_solution", "return input_array @ self.W + self.b",
     "return np.dot(input_array, self.W) + self.b.reshape(1, -1)"),
    ("linear_solution", LINEAR_UPDATE + """
        self.b = self.b - lr * output_gradient.sum(axis=0, keepdims=True)
        return input_gradient""",
     """        grad_W = np.einsum("mi,mk->ik", input_array, output_gradient)
        grad_b = np.ones((1, input_array.shape[0])) @ output_gradient
        result = np.dot(output_gradient, self.W.T)
        self.W -= lr * grad_W
        self.b -= lr * grad_b
        return result"""),
    ("relu_solution", "return np.maximum(input_array, 0.0)",
     "out = input_array.copy()\n        out[out < 0] = 0\n        return out"),
    ("relu_solution", "return output_gradient * (input_array > 0)",
     "return np.where(input_array > 0, output_gradient, 0.0)"),
    ("sigmoid_solution", """        z = np.exp(-np.abs(input_array))
        return np.where(input_array >= 0, 1.0 / (1.0 + z), z / (1.0 + z))""",
     "        return 0.5 * (1.0 + np.tanh(0.5 * input_array))"),
    ("mse_solution", "return float(np.mean((predicted_y - y) ** 2))",
     "diff = (predicted_y - y).ravel()\n        return diff @ diff / len(diff)"),
    ("simplenn_solution", """        current = input_array
        for index, layer in enumerate(self.layers):
            self.inputs[index] = current
            current = layer(current)
        self.output = current
        return current""",
     """        self.inputs = []
        x = input_array
        for layer in self.layers:
            self.inputs.append(x)
            x = layer.forward(x)
        self.output = x
        return self.output"""),
    ("simplenn_solution", """        for layer, layer_input in zip(reversed(self.layers), reversed(self.inputs)):
            if layer.with_weights:
                gradient = layer.backward(layer_input, gradient, self.lr)
            else:
                gradient = layer.backward(layer_input, gradient)""",
     """        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            extra = (self.lr,) if layer.with_weights else ()
            gradient = layer.backward(self.inputs[i], gradient, *extra)"""),
    ("cross_entropy_solution", """        shifted = predicted_y - predicted_y.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-(y * log_probabilities).sum() / predicted_y.shape[0])""",
     """        m = np.max(predicted_y, axis=1)
        log_sum = m + np.log(np.sum(np.exp(predicted_y - m[:, None]), axis=1))
        true_logit = np.sum(predicted_y * y, axis=1)
        return np.mean(log_sum - true_logit)"""),
    ("conv1d_solution", """        for k in range(width):
            output += padded[:, k:k + length] * self.W[0, k]
        return output + self.b""",
     """        windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)
        return windows @ self.W[0] + self.b[0, 0]"""),
]
