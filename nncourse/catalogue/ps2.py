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
           {"linear_forward"}),
    mutant("weight created in torch.nn's orientation", "linear_solution",
           """        self.weight = torch.empty(in_features, out_features)""",
           """        self.weight = torch.empty(out_features, in_features)""",
           {"linear_forward", "training"}),
    mutant("forward without the bias", "linear_solution",
           "return x @ self.weight + self.bias", "return x @ self.weight",
           {"linear_forward"}),
    mutant("forward caches nothing and backward uses the weight", "linear_solution",
           """        self.cache = x
        return x @ self.weight + self.bias""",
           """        return x @ self.weight + self.bias""",
           {"linear_backward", "training"}),
    # Linear: backward
    mutant("weight gradient averaged over the batch", "linear_solution",
           "self.weight_grad = x.T @ dupstream",
           "self.weight_grad = x.T @ dupstream / x.shape[0]",
           {"linear_backward", "training"}),
    mutant("bias gradient averaged over the batch", "linear_solution",
           "self.bias_grad = dupstream.sum(dim=0)",
           "self.bias_grad = dupstream.mean(dim=0)",
           {"linear_backward"}),
    mutant("input gradient through the weight, not its transpose", "linear_solution",
           "return dupstream @ self.weight.T",
           "return dupstream @ self.weight",  # raises unless the layer is square
           {"linear_backward", "training"}),
    # ReLU
    mutant("ReLU forward clamps from above", "activations_solution",
           "return torch.clamp(x, min=0)", "return torch.clamp(x, max=0)",
           {"relu_forward"}),
    mutant("ReLU forward is the absolute value", "activations_solution",
           "return torch.clamp(x, min=0)", "return torch.abs(x)",
           {"relu_forward"}),
    mutant("ReLU forward leaky", "activations_solution",
           "return torch.clamp(x, min=0)", "return torch.where(x > 0, x, 0.01 * x)",
           {"relu_forward"}),
    mutant("ReLU backward zeroes the gradient in place", "activations_solution",
           "return dupstream * (self.cache > 0)",
           "dupstream[self.cache <= 0] = 0\n        return dupstream",
           {"relu_backward"}),
    mutant("ReLU backward lets the gradient through at zero", "activations_solution",
           "return dupstream * (self.cache > 0)",
           "return dupstream * (self.cache >= 0)",
           {"relu_backward"}),
    mutant("ReLU backward masked on the gradient's sign", "activations_solution",
           "return dupstream * (self.cache > 0)",
           "return dupstream * (dupstream > 0)",
           {"relu_backward"}),
    # Sigmoid
    mutant("sigmoid with the sign of the exponent flipped", "activations_solution",
           "y = 1.0 / (1.0 + torch.exp(-x))", "y = 1.0 / (1.0 + torch.exp(x))",
           # y (1 - y) is the same for sigmoid(-x), so backward stays right
           {"sigmoid_forward", "training"}),
    mutant("sigmoid as e^x / (1 + e^x), which overflows", "activations_solution",
           "y = 1.0 / (1.0 + torch.exp(-x))", "y = torch.exp(x) / (1.0 + torch.exp(x))",
           {"sigmoid_forward", "sigmoid_backward"}),
    mutant("sigmoid of the tanh", "activations_solution",
           "y = 1.0 / (1.0 + torch.exp(-x))", "y = torch.tanh(x)",
           {"sigmoid_forward", "sigmoid_backward", "training"}),
    mutant("sigmoid cached as its input", "activations_solution",
           """        y = 1.0 / (1.0 + torch.exp(-x))
        self.cache = y""",
           """        y = 1.0 / (1.0 + torch.exp(-x))
        self.cache = x""",
           {"sigmoid_backward", "training"}),
    mutant("sigmoid backward without the upstream gradient", "activations_solution",
           "return dupstream * y * (1.0 - y)", "return y * (1.0 - y)",
           {"sigmoid_backward", "training"}),
    mutant("sigmoid backward with a sign error", "activations_solution",
           "return dupstream * y * (1.0 - y)", "return dupstream * y * (y - 1.0)",
           {"sigmoid_backward", "training"}),
    # Net
    mutant("Net backward from first to last", "net_solution",
           "for layer in reversed(self.layers):\n            dupstream = layer.backward(dupstream)",
           "for layer in self.layers:\n            dupstream = layer.backward(dupstream)",
           {"net_backward", "training"}),
    mutant("Net backward gives every layer the network's gradient", "net_solution",
           """        for layer in reversed(self.layers):
            dupstream = layer.backward(dupstream)
        return dupstream""",
           """        dx = dupstream
        for layer in reversed(self.layers):
            dx = layer.backward(dupstream)
        return dx""",
           {"net_backward", "training"}),
    mutant("Net forward feeds every layer the network's input", "net_solution",
           """        for layer in self.layers:
            x = layer.forward(x)
        return x""",
           """        y = x
        for layer in self.layers:
            y = layer.forward(x)
        return y""",
           {"net_backward", "training"}),
    mutant("optimizer step up the gradient", "net_solution",
           "layer.weight = layer.weight - lr * layer.weight_grad",
           "layer.weight = layer.weight + lr * layer.weight_grad",
           {"net_step", "training"}),
    mutant("optimizer step forgets the bias", "net_solution",
           "                layer.bias = layer.bias - lr * layer.bias_grad\n", "",
           {"net_step"}),
    mutant("optimizer step only on the last layer", "net_solution",
           """        for layer in self.layers:
            if hasattr(layer, "weight"):""",
           """        for layer in self.layers[-1:]:
            if hasattr(layer, "weight"):""",
           {"net_step", "training"}),
    # TorchNet
    mutant("TorchNet hidden layer of the wrong width", "torchnet_solution",
           "self.layer1 = nn.Linear(in_features, hidden_dim)\n",
           "self.layer1 = nn.Linear(in_features, out_features)\n",
           {"torchnet"}),
    mutant("TorchNet without the activation in forward", "torchnet_solution",
           "return self.layer2(self.relu(self.layer1(x)))",
           "return self.layer2(self.layer1(x))",
           {"torchnet"}),
    mutant("TorchNet with a sigmoid", "torchnet_solution",
           "self.relu = nn.ReLU()", "self.relu = nn.Sigmoid()",
           {"torchnet"}),
    # Softmax and the loss
    mutant("softmax without the max shift", "softmax_solution",
           "exponentials = torch.exp(z - z.max(dim=1, keepdim=True).values)",
           "exponentials = torch.exp(z)",
           {"softmax", "cross_entropy_grad"}),
    mutant("softmax over the batch axis", "softmax_solution",
           """    exponentials = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return exponentials / exponentials.sum(dim=1, keepdim=True)""",
           """    exponentials = torch.exp(z - z.max(dim=0, keepdim=True).values)
    return exponentials / exponentials.sum(dim=0, keepdim=True)""",
           {"softmax", "cross_entropy_grad", "training"}),
    mutant("softmax shifts the logits in place", "softmax_solution",
           "    exponentials = torch.exp(z - z.max(dim=1, keepdim=True).values)",
           "    z -= z.max(dim=1, keepdim=True).values\n    exponentials = torch.exp(z)",
           {"softmax", "cross_entropy_loss", "cross_entropy_grad"}),
    mutant("loss summed over the batch", "softmax_solution",
           "loss = -(y_true * log_p).sum() / n", "loss = -(y_true * log_p).sum()",
           {"cross_entropy_loss"}),
    mutant("loss as the log of the softmax without the max shift", "softmax_solution",
           "log_p = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))",
           "log_p = torch.log(torch.exp(y_pred) / torch.exp(y_pred).sum(dim=1, keepdim=True))",
           {"cross_entropy_loss"}),
    mutant("loss with the sign flipped", "softmax_solution",
           "loss = -(y_true * log_p).sum() / n", "loss = (y_true * log_p).sum() / n",
           {"cross_entropy_loss"}),
    mutant("gradient not divided by the batch", "softmax_solution",
           "grad = (Softmax(y_pred) - y_true) / n", "grad = Softmax(y_pred) - y_true",
           {"cross_entropy_grad", "training"}),
    mutant("gradient with the sign flipped", "softmax_solution",
           "grad = (Softmax(y_pred) - y_true) / n", "grad = (y_true - Softmax(y_pred)) / n",
           {"cross_entropy_grad", "training"}),
    mutant("gradient of the logits instead of the probabilities", "softmax_solution",
           "grad = (Softmax(y_pred) - y_true) / n", "grad = (y_pred - y_true) / n",
           {"cross_entropy_grad", "training"}),
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
