"""Realistic wrong implementations of ps2 (mutants) and correct ones written differently.

As for ps1: each mutant edits the reference solution from source/ps2/ps2.ipynb and names
exactly the checks it must fail. The training check trains a network built from the
student's classes, so a wrong gradient anywhere also costs the training points.
"""

from nncourse.catalogue import mutants_of

mutant = mutants_of("ps2")


MUTANTS = [
    # Linear: parameters and forward
    mutant("bias created as a 1 x out matrix", "linear_solution",
           "self.bias = torch.empty(out_features)",
           "self.bias = torch.empty(1, out_features)",
           {"linear_forward"},
           explanation=("The bias is created as a 1 x out_features matrix; the layer's bias is "
                        "a vector of out_features values.")),
    mutant("weight created in torch.nn's orientation", "linear_solution",
           """        self.weight = torch.empty(in_features, out_features)""",
           """        self.weight = torch.empty(out_features, in_features)""",
           {"linear_forward", "training"},
           explanation=("The weight is created as out_features x in_features (torch.nn's "
                        "layout); this layer computes x @ W, so W is in_features x "
                        "out_features.")),
    mutant("forward without the bias", "linear_solution",
           "return x @ self.weight + self.bias", "return x @ self.weight",
           {"linear_forward"},
           explanation="The forward pass returns x @ W without adding the bias."),
    mutant("forward caches nothing and backward uses the weight", "linear_solution",
           """        self.cache = x
        return x @ self.weight + self.bias""",
           """        return x @ self.weight + self.bias""",
           {"linear_backward", "training"},
           explanation=("The forward pass no longer stores its input in self.cache, so backward "
                        "computes the gradients from an input that is not this pass's.")),
    # Linear: backward
    mutant("weight gradient averaged over the batch", "linear_solution",
           "self.weight_grad = x.T @ dupstream",
           "self.weight_grad = x.T @ dupstream / x.shape[0]",
           {"linear_backward", "training"},
           explanation=("The weight gradient is divided by the batch size; the upstream "
                        "gradient already carries the loss's averaging, so the samples' "
                        "contributions add up.")),
    mutant("bias gradient averaged over the batch", "linear_solution",
           "self.bias_grad = dupstream.sum(dim=0)",
           "self.bias_grad = dupstream.mean(dim=0)",
           {"linear_backward"},
           explanation=("The bias gradient is the mean of the upstream gradient over the batch "
                        "instead of its sum.")),
    mutant("input gradient through the weight, not its transpose", "linear_solution",
           "return dupstream @ self.weight.T",
           "return dupstream @ self.weight",  # raises unless the layer is square
           {"linear_backward", "training"},
           explanation=("The input gradient multiplies by the weight instead of its transpose, "
                        "which fails or is wrong whenever the layer is not square.")),
    # ReLU
    mutant("ReLU forward clamps from above", "activations_solution",
           "return torch.clamp(x, min=0)", "return torch.clamp(x, max=0)",
           {"relu_forward"},
           explanation=("The forward pass clamps from above (max=0), keeping the negative part "
                        "instead of the positive part.")),
    mutant("ReLU forward is the absolute value", "activations_solution",
           "return torch.clamp(x, min=0)", "return torch.abs(x)",
           {"relu_forward"},
           explanation=("The forward pass returns the absolute value: negative inputs come out "
                        "positive instead of 0.")),
    mutant("ReLU forward leaky", "activations_solution",
           "return torch.clamp(x, min=0)", "return torch.where(x > 0, x, 0.01 * x)",
           {"relu_forward"},
           explanation=("The forward pass keeps a small slope for negative inputs (a leaky "
                        "ReLU); a ReLU sets them to 0.")),
    mutant("ReLU backward zeroes the gradient in place", "activations_solution",
           "return dupstream * (self.cache > 0)",
           "dupstream[self.cache <= 0] = 0\n        return dupstream",
           {"relu_backward"},
           explanation=("The backward pass zeroes entries of the upstream gradient tensor in "
                        "place, changing a tensor that the caller still holds.")),
    mutant("ReLU backward lets the gradient through at zero", "activations_solution",
           "return dupstream * (self.cache > 0)",
           "return dupstream * (self.cache >= 0)",
           {"relu_backward"},
           explanation=("The backward pass lets the gradient through where the input is exactly "
                        "0; the derivative there is taken to be 0.")),
    mutant("ReLU backward masked on the gradient's sign", "activations_solution",
           "return dupstream * (self.cache > 0)",
           "return dupstream * (dupstream > 0)",
           {"relu_backward"},
           explanation=("The backward pass masks on the sign of the upstream gradient; the mask "
                        "must come from where the forward input was positive.")),
    # Sigmoid
    mutant("sigmoid with the sign of the exponent flipped", "activations_solution",
           "y = 1.0 / (1.0 + torch.exp(-x))", "y = 1.0 / (1.0 + torch.exp(x))",
           # y (1 - y) is the same for sigmoid(-x), so backward stays right
           {"sigmoid_forward", "training"},
           explanation=("The sigmoid is computed as 1 / (1 + exp(x)), which is σ(-x): the "
                        "exponent's sign is flipped.")),
    mutant("sigmoid as e^x / (1 + e^x), which overflows", "activations_solution",
           "y = 1.0 / (1.0 + torch.exp(-x))", "y = torch.exp(x) / (1.0 + torch.exp(x))",
           {"sigmoid_forward", "sigmoid_backward"},
           explanation=("The sigmoid is computed as exp(x) / (1 + exp(x)), which overflows to "
                        "nan for large positive inputs.")),
    mutant("sigmoid of the tanh", "activations_solution",
           "y = 1.0 / (1.0 + torch.exp(-x))", "y = torch.tanh(x)",
           {"sigmoid_forward", "sigmoid_backward", "training"},
           explanation=("The forward pass returns tanh(x), which lies in (-1, 1), not the "
                        "sigmoid.")),
    mutant("sigmoid cached as its input", "activations_solution",
           """        y = 1.0 / (1.0 + torch.exp(-x))
        self.cache = y""",
           """        y = 1.0 / (1.0 + torch.exp(-x))
        self.cache = x""",
           {"sigmoid_backward", "training"},
           explanation=("The forward pass caches its input rather than its output, so backward "
                        "computes the derivative from x instead of from σ(x).")),
    mutant("sigmoid backward without the upstream gradient", "activations_solution",
           "return dupstream * y * (1.0 - y)", "return y * (1.0 - y)",
           {"sigmoid_backward", "training"},
           explanation=("The backward pass returns the sigmoid's derivative without multiplying "
                        "it by the upstream gradient.")),
    mutant("sigmoid backward with a sign error", "activations_solution",
           "return dupstream * y * (1.0 - y)", "return dupstream * y * (y - 1.0)",
           {"sigmoid_backward", "training"},
           explanation=("The backward pass uses y(y - 1), which is the derivative with its sign "
                        "flipped.")),
    # Net
    mutant("Net backward from first to last", "net_solution",
           "for layer in reversed(self.layers):\n            dupstream = layer.backward(dupstream)",
           "for layer in self.layers:\n            dupstream = layer.backward(dupstream)",
           {"net_backward", "training"},
           explanation=("The network's backward pass goes through the layers from first to "
                        "last; the gradient must flow from the last layer back to the first.")),
    mutant("Net backward gives every layer the network's gradient", "net_solution",
           """        for layer in reversed(self.layers):
            dupstream = layer.backward(dupstream)
        return dupstream""",
           """        dx = dupstream
        for layer in reversed(self.layers):
            dx = layer.backward(dupstream)
        return dx""",
           {"net_backward", "training"},
           explanation=("Every layer's backward receives the network's upstream gradient "
                        "instead of the gradient returned by the layer after it.")),
    mutant("Net forward feeds every layer the network's input", "net_solution",
           """        for layer in self.layers:
            x = layer.forward(x)
        return x""",
           """        y = x
        for layer in self.layers:
            y = layer.forward(x)
        return y""",
           {"net_backward", "training"},
           explanation=("Every layer is fed the network's input instead of the previous layer's "
                        "output.")),
    mutant("optimizer step up the gradient", "net_solution",
           "layer.weight = layer.weight - lr * layer.weight_grad",
           "layer.weight = layer.weight + lr * layer.weight_grad",
           {"net_step", "training"},
           explanation=("The step adds lr times the weight gradient: it climbs the loss instead "
                        "of descending it.")),
    mutant("optimizer step forgets the bias", "net_solution",
           "                layer.bias = layer.bias - lr * layer.bias_grad\n", "",
           {"net_step"},
           explanation="The step updates the weights but never the biases."),
    mutant("optimizer step only on the last layer", "net_solution",
           """        for layer in self.layers:
            if hasattr(layer, "weight"):""",
           """        for layer in self.layers[-1:]:
            if hasattr(layer, "weight"):""",
           {"net_step", "training"},
           explanation=("The step updates only the last layer's parameters; every layer with "
                        "weights must be updated.")),
    # TorchNet
    mutant("TorchNet hidden layer of the wrong width", "torchnet_solution",
           "self.layer1 = nn.Linear(in_features, hidden_dim)\n",
           "self.layer1 = nn.Linear(in_features, out_features)\n",
           {"torchnet"},
           explanation="The hidden layer has out_features units instead of hidden_dim."),
    mutant("TorchNet without the activation in forward", "torchnet_solution",
           "return self.layer2(self.relu(self.layer1(x)))",
           "return self.layer2(self.layer1(x))",
           {"torchnet"},
           explanation=("The forward pass applies no activation between the two linear layers, "
                        "so the network is linear.")),
    mutant("TorchNet with a sigmoid", "torchnet_solution",
           "self.relu = nn.ReLU()", "self.relu = nn.Sigmoid()",
           {"torchnet"},
           explanation=("The network uses a sigmoid between the layers where a ReLU is asked "
                        "for.")),
    # Softmax and the loss
    mutant("softmax without the max shift", "softmax_solution",
           "exponentials = torch.exp(z - z.max(dim=1, keepdim=True).values)",
           "exponentials = torch.exp(z)",
           {"softmax", "cross_entropy_grad"},
           explanation=("The softmax exponentiates the raw logits: for large logits exp "
                        "overflows and the result is nan.")),
    mutant("softmax over the batch axis", "softmax_solution",
           """    exponentials = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return exponentials / exponentials.sum(dim=1, keepdim=True)""",
           """    exponentials = torch.exp(z - z.max(dim=0, keepdim=True).values)
    return exponentials / exponentials.sum(dim=0, keepdim=True)""",
           {"softmax", "cross_entropy_grad", "training"},
           explanation=("The softmax normalises over the batch (dim 0) instead of over each "
                        "sample's classes (dim 1).")),
    mutant("softmax shifts the logits in place", "softmax_solution",
           "    exponentials = torch.exp(z - z.max(dim=1, keepdim=True).values)",
           "    z -= z.max(dim=1, keepdim=True).values\n    exponentials = torch.exp(z)",
           {"softmax", "cross_entropy_loss", "cross_entropy_grad"},
           explanation=("The softmax subtracts the maximum from the logits in place, changing "
                        "the tensor it was given.")),
    mutant("loss summed over the batch", "softmax_solution",
           "loss = -(y_true * log_p).sum() / n", "loss = -(y_true * log_p).sum()",
           {"cross_entropy_loss"},
           explanation="The loss sums over the batch instead of averaging over it."),
    mutant("loss as the log of the softmax without the max shift", "softmax_solution",
           "log_p = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))",
           "log_p = torch.log(torch.exp(y_pred) / torch.exp(y_pred).sum(dim=1, keepdim=True))",
           {"cross_entropy_loss"},
           explanation=("The loss takes the log of a softmax of the raw logits, which overflows "
                        "(nan or inf) for large logits.")),
    mutant("loss with the sign flipped", "softmax_solution",
           "loss = -(y_true * log_p).sum() / n", "loss = (y_true * log_p).sum() / n",
           {"cross_entropy_loss"},
           explanation=("The loss is the sum of y log p without the minus sign, so it is "
                        "negative and decreases as predictions get worse.")),
    mutant("gradient not divided by the batch", "softmax_solution",
           "grad = (Softmax(y_pred) - y_true) / n", "grad = Softmax(y_pred) - y_true",
           {"cross_entropy_grad", "training"},
           explanation=("The gradient is softmax - y without dividing by the batch size, "
                        "although the loss is a mean.")),
    mutant("gradient with the sign flipped", "softmax_solution",
           "grad = (Softmax(y_pred) - y_true) / n", "grad = (y_true - Softmax(y_pred)) / n",
           {"cross_entropy_grad", "training"},
           explanation="The gradient is (y - softmax)/N: its sign is flipped."),
    mutant("gradient of the logits instead of the probabilities", "softmax_solution",
           "grad = (Softmax(y_pred) - y_true) / n", "grad = (y_pred - y_true) / n",
           {"cross_entropy_grad", "training"},
           explanation=("The gradient subtracts the labels from the logits; it is the softmax "
                        "probabilities minus the labels.")),
]

EQUIVALENT = [
    ("linear_solution", "return x @ self.weight + self.bias",
     "return torch.addmm(self.bias.unsqueeze(0), x, self.weight)"),
    # torch warns (UserWarning: copy construct from a tensor): harmless, and it costs nothing
    ("linear_solution", "        self.cache = x\n",
     "        self.cache = torch.tensor(x)\n"),
    ("linear_solution", """        self.weight_grad = x.T @ dupstream
        self.bias_grad = dupstream.sum(dim=0)
        return dupstream @ self.weight.T""",
     """        self.weight_grad = torch.einsum("ni,no->io", x, dupstream)
        self.bias_grad = torch.ones(x.shape[0]) @ dupstream
        return torch.matmul(dupstream, self.weight.transpose(0, 1))"""),
    ("activations_solution", "return torch.clamp(x, min=0)",
     "return torch.where(x > 0, x, torch.zeros_like(x))"),
    ("activations_solution", "return dupstream * (self.cache > 0)",
     "dx = dupstream.clone()\n        dx[self.cache <= 0] = 0\n        return dx"),
    ("activations_solution", "y = 1.0 / (1.0 + torch.exp(-x))",
     "y = 0.5 * (1 + torch.tanh(x / 2))"),
    ("net_solution", """        for layer in self.layers:
            if hasattr(layer, "weight"):
                layer.weight = layer.weight - lr * layer.weight_grad
                layer.bias = layer.bias - lr * layer.bias_grad""",
     """        for layer in [l for l in self.layers if hasattr(l, "weight")]:
            layer.weight -= lr * layer.weight_grad
            layer.bias -= lr * layer.bias_grad"""),
    ("torchnet_solution", """        self.layer1 = nn.Linear(in_features, hidden_dim)
        self.relu = nn.ReLU()
        self.layer2 = nn.Linear(hidden_dim, out_features)""",
     """        self.relu = nn.ReLU()
        self.layer2 = nn.Linear(hidden_dim, out_features)
        self.layer1 = nn.Linear(in_features, hidden_dim)"""),
    ("softmax_solution", """    exponentials = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return exponentials / exponentials.sum(dim=1, keepdim=True)""",
     """    return torch.exp(z - torch.logsumexp(z, dim=1, keepdim=True))"""),
    ("softmax_solution", """    n = y_pred.shape[0]
    shifted = y_pred - y_pred.max(dim=1, keepdim=True).values
    log_p = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
    loss = -(y_true * log_p).sum() / n""",
     """    n = len(y_pred)
    labels = torch.argmax(y_true, dim=1)
    log_p = y_pred - torch.logsumexp(y_pred, dim=1, keepdim=True)
    loss = -log_p[torch.arange(n), labels].mean()"""),
]
