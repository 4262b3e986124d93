"""Realistic wrong implementations of ps5 (mutants) and correct ones written differently."""

from nncourse.catalogue import mutants_of

mutant = mutants_of("ps5")


FIRST = "first_net_solution"
DIGITS = "digits_solution"
CNN = "cnn_solution"
CIFAR = "cifar_solution"
CELL = "rnn_cell_solution"
SINE = "sine_rnn_solution"
POSITIONAL = "positional_solution"

MUTANTS = [
    # MyFirstNeuralNet.forward
    mutant("first net without the ReLU", FIRST,
           "return self.l2(self.relu(self.l1(x)))", "return self.l2(self.l1(x))",
           {"first_net_forward"},
           explanation="The forward pass has no ReLU between the two linear layers."),
    mutant("first net with a ReLU on the output too", FIRST,
           "return self.l2(self.relu(self.l1(x)))", "return self.relu(self.l2(self.relu(self.l1(x))))",
           {"first_net_forward"},
           explanation="A ReLU is applied to the output as well, so it can never be negative."),
    mutant("first net with the ReLU on the input", FIRST,
           "return self.l2(self.relu(self.l1(x)))", "return self.l2(self.l1(self.relu(x)))",
           {"first_net_forward"},
           explanation="The ReLU is applied to the input instead of between the two layers."),
    # DigitNet
    mutant("softmax over the batch", DIGITS,
           "return torch.softmax(self.l3(x), dim=1)", "return torch.softmax(self.l3(x), dim=0)",
           {"digitnet"},
           explanation=("The softmax normalises over the batch (dim 0) instead of over each "
                        "sample's classes.")),
    mutant("DigitNet returns scores without the softmax", DIGITS,
           "return torch.softmax(self.l3(x), dim=1)", "return self.l3(x)",
           {"digitnet"},
           explanation=("The network returns raw scores; it is to return probabilities (a "
                        "softmax over the classes).")),
    mutant("DigitNet with 784 inputs written in", DIGITS,
           "self.l1 = nn.Linear(input_dimensions, 512)", "self.l1 = nn.Linear(784, 512)",
           {"digitnet"},
           explanation=("The first layer's input size is fixed at 784 instead of "
                        "input_dimensions.")),
    mutant("DigitNet without the second ReLU", DIGITS,
           "        x = self.relu(self.l2(x))\n", "        x = self.l2(x)\n",
           {"digitnet"},
           explanation="There is no ReLU after the second linear layer."),
    # train_model
    mutant("cross-entropy on the probabilities (a second softmax)", DIGITS,
           """    loss_fn = nn.NLLLoss()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(torch.log(model(x_train)), y_train)""",
           """    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(model(x_train), y_train)""",
           {"train_model"},
           explanation=("The loss is CrossEntropyLoss on the network's probabilities, which "
                        "applies a softmax a second time; the probabilities' log goes to "
                        "NLLLoss.")),
    mutant("train_model with SGD", DIGITS,
           "optimiser = torch.optim.Adam(model.parameters())",
           "optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)",
           {"train_model"},
           explanation=("The model is trained with SGD at a small learning rate, which barely "
                        "moves in the epochs given; the task uses Adam.")),
    mutant("train_model never clears the gradients", DIGITS,
           "        optimiser.zero_grad()\n        loss = loss_fn(torch.log", "        loss = loss_fn(torch.log",
           {"train_model"},
           explanation=("The gradients are never zeroed, so each step adds to the previous "
                        "ones.")),
    mutant("train_model trains 20 epochs whatever it is told", DIGITS,
           "    for _ in range(epochs):\n        optimiser.zero_grad()",
           "    for _ in range(20):\n        optimiser.zero_grad()",
           {"train_model"},
           explanation="train_model trains 20 epochs whatever epochs it is given."),
    # get_accuracy
    mutant("accuracy with the argmax over the batch", DIGITS,
           "return (scores.argmax(dim=1) == labels).float().mean().item()",
           "return (scores.argmax(dim=0)[:len(labels)] == labels).float().mean().item()",
           {"get_accuracy"},
           explanation=("The argmax is taken over the batch (dim 0) instead of over each row's "
                        "classes.")),
    mutant("accuracy as a count", DIGITS,
           "return (scores.argmax(dim=1) == labels).float().mean().item()",
           "return (scores.argmax(dim=1) == labels).float().sum().item()",
           {"get_accuracy"},
           explanation="The accuracy is the number of correct predictions, not their share."),
    mutant("accuracy in percent", DIGITS,
           "return (scores.argmax(dim=1) == labels).float().mean().item()",
           "return 100 * (scores.argmax(dim=1) == labels).float().mean().item()",
           {"get_accuracy"},
           explanation=("The accuracy is given in percent; the function returns a share between "
                        "0 and 1.")),
    mutant("accuracy compares the highest score with the label", DIGITS,
           "return (scores.argmax(dim=1) == labels).float().mean().item()",
           "return (scores.max(dim=1).values == labels).float().mean().item()",
           {"get_accuracy"},
           explanation=("The highest score itself is compared with the label, instead of the "
                        "class that has it (the argmax).")),
    # DropoutCNN
    mutant("dropout left on at evaluation", CNN,
           "        x = self.dropout(self.lrelu(self.l1(x)))\n",
           "        x = F.dropout(self.lrelu(self.l1(x)), self.dropout.p)\n",
           {"dropout_cnn"},
           explanation=("Dropout in the first linear block is applied whatever the mode, so it "
                        "still drops units in evaluation mode.")),
    mutant("dropout probability fixed at 0.5", CNN,
           "self.dropout = nn.Dropout(drop_prob)", "self.dropout = nn.Dropout(0.5)",
           {"dropout_cnn"},
           explanation="The dropout probability is fixed at 0.5 instead of drop_prob."),
    mutant("dropout given the keep probability", CNN,
           "self.dropout = nn.Dropout(drop_prob)", "self.dropout = nn.Dropout(1 - drop_prob)",
           {"dropout_cnn"},
           explanation=("Dropout is given 1 - drop_prob: nn.Dropout's argument is the "
                        "probability of dropping a unit.")),
    mutant("leaky ReLU with the default slope", CNN,
           "        self.lrelu = nn.LeakyReLU(0.1)\n        self.dropout",
           "        self.lrelu = nn.LeakyReLU()\n        self.dropout",
           {"dropout_cnn"},
           explanation="The leaky ReLU uses the default negative slope (0.01) instead of 0.1."),
    mutant("no dropout at all", CNN,
           "self.dropout = nn.Dropout(drop_prob)", "self.dropout = nn.Identity()",
           {"dropout_cnn"},
           explanation="The network applies no dropout."),
    # train_cnn
    mutant("epoch loss of the last batch only", CNN,
           "epoch_losses.append(total / len(loader))", "epoch_losses.append(loss.item())",
           {"train_cnn"},
           explanation=("The epoch's loss is that of its last batch only, not the mean over its "
                        "batches.")),
    mutant("epoch loss summed over the batches", CNN,
           "epoch_losses.append(total / len(loader))", "epoch_losses.append(total)",
           {"train_cnn"},
           explanation="The epoch's loss sums the batches' losses instead of averaging them."),
    mutant("train_cnn never clears the gradients", CNN,
           "            optimiser.zero_grad()\n            loss = loss_fn(model(x), y)",
           "            loss = loss_fn(model(x), y)",
           {"train_cnn"},
           explanation=("The gradients are never zeroed, so each step adds to the previous "
                        "ones.")),
    mutant("train_cnn leaves the model in evaluation mode", CNN,
           "        model.train()\n        total = 0.0", "        total = 0.0",
           {"train_cnn"},
           explanation=("The model is never put in training mode, so dropout stays off while it "
                        "trains.")),
    mutant("train_cnn trains 10 epochs whatever it is told", CNN,
           "    for epoch in range(epochs):\n        model.train()",
           "    for epoch in range(10):\n        model.train()",
           {"train_cnn"},
           explanation="train_cnn trains 10 epochs whatever epochs it is given."),
    # get_augmentations
    mutant("a single augmentation", CIFAR,
           """        transforms.RandomCrop(32, padding=4),
        transforms.ColorJitter(brightness=0.2, contrast=0.2),
""", "",
           {"augmentations"},
           explanation="Only one random augmentation is applied; the task asks for more."),
    mutant("augmentations that resize to 28 pixels", CIFAR,
           "transforms.RandomCrop(32, padding=4),", "transforms.RandomCrop(28),",
           {"augmentations"},
           explanation="The random crop makes 28 x 28 images; the network expects 32 x 32."),
    mutant("grayscale augmentation (one channel)", CIFAR,
           "transforms.ColorJitter(brightness=0.2, contrast=0.2),", "transforms.Grayscale(),",
           {"augmentations"},
           explanation=("The images are turned to grayscale with one channel; the network "
                        "expects three.")),
    mutant("augmentations that are not random", CIFAR,
           """        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(32, padding=4),
        transforms.ColorJitter(brightness=0.2, contrast=0.2),""",
           """        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        transforms.CenterCrop(32),""",
           {"augmentations"},
           explanation=("The transforms are deterministic (a normalisation and a center crop), "
                        "so they add no variety to the training images.")),
    # CIFARCNN
    mutant("CIFARCNN with ReLU in the fully connected part", CIFAR,
           """            nn.Linear(64, 256), nn.LeakyReLU(0.1),
            nn.Linear(256, 128), nn.LeakyReLU(0.1),""",
           """            nn.Linear(64, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),""",
           {"cifar_cnn"},
           explanation="The fully connected part uses ReLU instead of LeakyReLU(0.1)."),
    mutant("CIFARCNN with a softmax at the end", CIFAR,
           "            nn.Linear(128, classes))", "            nn.Linear(128, classes), nn.Softmax(dim=1))",
           {"cifar_cnn"},
           explanation=("The network ends with a softmax; it is to return raw scores for the "
                        "cross-entropy loss.")),
    mutant("CIFARCNN pools before the second convolution only", CIFAR,
           "nn.Conv2d(3, 32, 3), nn.MaxPool2d(2), nn.LeakyReLU(0.1),",
           "nn.Conv2d(3, 32, 3), nn.LeakyReLU(0.1), nn.MaxPool2d(3),",
           {"cifar_cnn"},
           explanation=("The first block pools with a 3 x 3 window after the activation; the "
                        "feature maps then have the wrong size.")),
    mutant("CIFARCNN with the default leaky slope in conv", CIFAR,
           "nn.Conv2d(32, 64, 3), nn.MaxPool2d(2), nn.LeakyReLU(0.1))",
           "nn.Conv2d(32, 64, 3), nn.MaxPool2d(2), nn.LeakyReLU())",
           {"cifar_cnn"},
           explanation=("The second convolution's leaky ReLU uses the default slope (0.01) "
                        "instead of 0.1.")),
    # rnn_cell_forward
    mutant("cell softmax over the batch", CELL,
           "yt_pred = torch.softmax(Why.T @ h_next + by, dim=0)",
           "yt_pred = torch.softmax(Why.T @ h_next + by, dim=1)",
           {"rnn_cell"},
           explanation=("The prediction's softmax is taken over the batch (dim 1) instead of "
                        "over the outputs (dim 0).")),
    mutant("cell with Whh not transposed", CELL,
           "h_next = torch.tanh(Whh.T @ h_prev + Wxh.T @ xt + bh)",
           "h_next = torch.tanh(Whh @ h_prev + Wxh.T @ xt + bh)",
           {"rnn_cell"},
           explanation="The recurrent term uses Whh instead of its transpose."),
    mutant("cell without the hidden bias", CELL,
           "h_next = torch.tanh(Whh.T @ h_prev + Wxh.T @ xt + bh)",
           "h_next = torch.tanh(Whh.T @ h_prev + Wxh.T @ xt)",
           {"rnn_cell"},
           explanation="The new hidden state leaves out the bias bh."),
    mutant("cell predicts from the previous state", CELL,
           "yt_pred = torch.softmax(Why.T @ h_next + by, dim=0)",
           "yt_pred = torch.softmax(Why.T @ h_prev + by, dim=0)",
           {"rnn_cell"},
           explanation=("The prediction is computed from the previous hidden state instead of "
                        "the new one.")),
    # SineRNN
    mutant("SineRNN reads the first step's state", SINE,
           "return self.fc(states[:, -1, :])", "return self.fc(states[:, 0, :])",
           {"sine_rnn"},
           explanation=("The prediction is made from the first step's state instead of the last "
                        "one's.")),
    mutant("SineRNN averages the states over time", SINE,
           "return self.fc(states[:, -1, :])", "return self.fc(states.mean(dim=1))",
           {"sine_rnn"},
           explanation=("The prediction is made from the states' mean over time instead of the "
                        "last step's state.")),
    mutant("SineRNN without batch_first", SINE,
           "self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)",
           "self.rnn = nn.RNN(input_size, hidden_size)",
           {"sine_rnn"},
           explanation=("The RNN is created without batch_first=True, so it reads the batch as "
                        "the time axis.")),
    mutant("SineRNN with ReLU units", SINE,
           "self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)",
           "self.rnn = nn.RNN(input_size, hidden_size, nonlinearity='relu', batch_first=True)",
           {"sine_rnn"},
           explanation="The RNN uses ReLU units instead of the default tanh."),
    # PositionalEncoding
    mutant("sine and cosine swapped", POSITIONAL,
           """        encoding[:, 0::2] = torch.sin(position * rate)
        encoding[:, 1::2] = torch.cos(position * rate)""",
           """        encoding[:, 0::2] = torch.cos(position * rate)
        encoding[:, 1::2] = torch.sin(position * rate)""",
           {"positional_encoding"},
           explanation=("Even dimensions get the cosine and odd ones the sine; it is the other "
                        "way round.")),
    mutant("frequencies with k instead of 2k", POSITIONAL,
           "rate = torch.pow(10000.0, -torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / d)",
           "rate = torch.pow(10000.0, -torch.arange(0, d // 2, device=x.device, dtype=x.dtype) / d)",
           {"positional_encoding"},
           explanation=("The frequency of the k-th sine and cosine pair uses the exponent -k/d "
                        "where -2k/d belongs.")),
    mutant("positions counted from 1", POSITIONAL,
           "position = torch.arange(length, device=x.device, dtype=x.dtype).unsqueeze(1)",
           "position = torch.arange(1, length + 1, device=x.device, dtype=x.dtype).unsqueeze(1)",
           {"positional_encoding"},
           explanation="Positions are counted from 1 instead of 0."),
    mutant("the encoding returned instead of added", POSITIONAL,
           "        return x + encoding\n", "        return encoding.expand_as(x)\n",
           {"positional_encoding"},
           explanation="The encoding is returned on its own instead of added to the input."),
    mutant("frequencies scaled by the sequence length, not the width", POSITIONAL,
           "rate = torch.pow(10000.0, -torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / d)",
           "rate = torch.pow(10000.0, -torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / length)",
           {"positional_encoding"},
           explanation=("The frequencies are scaled by the sequence length instead of by the "
                        "model width d.")),
]

# Correct solutions written differently: each must pass every check.
EQUIVALENT = [
    (FIRST, "return self.l2(self.relu(self.l1(x)))",
     "hidden = torch.clamp(self.l1(x), min=0)\n        return hidden @ self.l2.weight.T + self.l2.bias"),
    (DIGITS, """        self.l1 = nn.Linear(input_dimensions, 512)
        self.l2 = nn.Linear(512, 128)
        self.l3 = nn.Linear(128, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x):
        \"\"\"x: (N, input_dimensions). Returns class probabilities, (N, num_classes).\"\"\"
        x = self.relu(self.l1(x))
        x = self.relu(self.l2(x))
        return torch.softmax(self.l3(x), dim=1)""",
     """        self.layers = nn.Sequential(
            nn.Linear(input_dimensions, 512), nn.ReLU(),
            nn.Linear(512, 128), nn.ReLU(),
            nn.Linear(128, num_classes), nn.Softmax(dim=-1))

    def forward(self, x):
        \"\"\"x: (N, input_dimensions). Returns class probabilities, (N, num_classes).\"\"\"
        return self.layers(x)"""),
    (DIGITS, """    loss_fn = nn.NLLLoss()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(torch.log(model(x_train)), y_train)
        loss.backward()
        optimiser.step()""",
     """    for epoch in range(epochs):
        probabilities = model(x_train)
        loss = -torch.log(probabilities[torch.arange(len(y_train)), y_train]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()"""),
    (DIGITS, "return (scores.argmax(dim=1) == labels).float().mean().item()",
     "_, predicted = torch.max(scores, 1)\n    return float((predicted == labels).sum()) / len(labels)"),
    (CNN, """        self.dropout = nn.Dropout(drop_prob)
        self.l1 = nn.Linear(64 * 5 * 5, 256)
        self.l2 = nn.Linear(256, 128)
        self.l3 = nn.Linear(128, classes)

    def forward(self, x):
        \"\"\"x: (N, 1, 28, 28). Returns class scores (logits), (N, classes).\"\"\"
        x = self.dropout(self.lrelu(self.pool(self.conv1(x))))
        x = self.dropout(self.lrelu(self.pool(self.conv2(x))))
        x = x.flatten(1)
        x = self.dropout(self.lrelu(self.l1(x)))""",
     """        self.dropout = nn.Dropout2d(drop_prob)  # whole channels after the convolutions
        self.flat_dropout = drop_prob
        self.l1 = nn.Linear(64 * 5 * 5, 256)
        self.l2 = nn.Linear(256, 128)
        self.l3 = nn.Linear(128, classes)

    def forward(self, x):
        \"\"\"x: (N, 1, 28, 28). Returns class scores (logits), (N, classes).\"\"\"
        x = self.dropout(self.lrelu(self.pool(self.conv1(x))))
        x = self.dropout(self.lrelu(self.pool(self.conv2(x))))
        x = x.view(-1, 64 * 5 * 5)
        x = F.dropout(self.lrelu(self.l1(x)), self.flat_dropout, training=self.training)"""),
    (CNN, """    for epoch in range(epochs):
        model.train()
        total = 0.0
        for x, y in loader:
            x, y = x.to(where), y.to(where)
            optimiser.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimiser.step()
            total += loss.item()
        epoch_losses.append(total / len(loader))""",
     """    model.train()
    for epoch in range(epochs):
        batch_losses = []
        for batch, (x, y) in enumerate(loader):
            scores = model(x.to(where))
            loss = F.cross_entropy(scores, y.to(where))
            model.zero_grad()
            loss.backward()
            optimiser.step()
            batch_losses.append(loss.detach())
        epoch_losses.append(torch.stack(batch_losses).mean().item())"""),
    (CIFAR, """        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(32, padding=4),
        transforms.ColorJitter(brightness=0.2, contrast=0.2),""",
     """        transforms.RandomRotation(10),
        transforms.RandomResizedCrop(32, scale=(0.8, 1.0)),"""),
    (CIFAR, """        self.conv = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.MaxPool2d(2), nn.LeakyReLU(0.1),
            nn.Conv2d(32, 64, 3), nn.MaxPool2d(2), nn.LeakyReLU(0.1))""",
     """        self.conv = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=(3, 3)), nn.LeakyReLU(0.1), nn.MaxPool2d((2, 2)),
            nn.Conv2d(32, 64, kernel_size=(3, 3)), nn.LeakyReLU(0.1), nn.MaxPool2d((2, 2)))"""),
    (CELL, """    h_next = torch.tanh(Whh.T @ h_prev + Wxh.T @ xt + bh)
    yt_pred = torch.softmax(Why.T @ h_next + by, dim=0)""",
     """    h_next = torch.tanh(torch.matmul(Wxh.t(), xt) + torch.matmul(Whh.t(), h_prev) + bh)
    scores = torch.mm(Why.t(), h_next) + by
    yt_pred = torch.exp(scores - scores.max(0).values) / torch.exp(scores - scores.max(0).values).sum(0)"""),
    (SINE, """        states, _ = self.rnn(x)
        return self.fc(states[:, -1, :])""",
     """        _, last = self.rnn(x)
        return self.fc(last[-1])"""),
    (POSITIONAL, """        _, length, d = x.shape
        position = torch.arange(length, device=x.device, dtype=x.dtype).unsqueeze(1)
        rate = torch.pow(10000.0, -torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / d)
        encoding = torch.zeros(length, d, device=x.device, dtype=x.dtype)
        encoding[:, 0::2] = torch.sin(position * rate)
        encoding[:, 1::2] = torch.cos(position * rate)
        return x + encoding""",
     """        length, d = x.size(1), x.size(2)
        i = torch.arange(length, dtype=torch.float64, device=x.device)[:, None]
        two_k = torch.arange(0, d, 2, dtype=torch.float64, device=x.device)[None, :]
        angle = i / 10000 ** (two_k / d)
        pe = torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(1)
        return x + pe.to(x.dtype)"""),
]
