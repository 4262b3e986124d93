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
           {"first_net_forward"}),
    mutant("first net with a ReLU on the output too", FIRST,
           "return self.l2(self.relu(self.l1(x)))", "return self.relu(self.l2(self.relu(self.l1(x))))",
           {"first_net_forward"}),
    mutant("first net with the ReLU on the input", FIRST,
           "return self.l2(self.relu(self.l1(x)))", "return self.l2(self.l1(self.relu(x)))",
           {"first_net_forward"}),
    # DigitNet
    mutant("softmax over the batch", DIGITS,
           "return torch.softmax(self.l3(x), dim=1)", "return torch.softmax(self.l3(x), dim=0)",
           {"digitnet"}),
    mutant("DigitNet returns scores without the softmax", DIGITS,
           "return torch.softmax(self.l3(x), dim=1)", "return self.l3(x)",
           {"digitnet"}),
    mutant("DigitNet with 784 inputs written in", DIGITS,
           "self.l1 = nn.Linear(input_dimensions, 512)", "self.l1 = nn.Linear(784, 512)",
           {"digitnet"}),
    mutant("DigitNet without the second ReLU", DIGITS,
           "        x = self.relu(self.l2(x))\n", "        x = self.l2(x)\n",
           {"digitnet"}),
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
           {"train_model"}),
    mutant("train_model with SGD", DIGITS,
           "optimiser = torch.optim.Adam(model.parameters())",
           "optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)",
           {"train_model"}),
    mutant("train_model never clears the gradients", DIGITS,
           "        optimiser.zero_grad()\n        loss = loss_fn(torch.log", "        loss = loss_fn(torch.log",
           {"train_model"}),
    mutant("train_model trains 20 epochs whatever it is told", DIGITS,
           "    for _ in range(epochs):\n        optimiser.zero_grad()",
           "    for _ in range(20):\n        optimiser.zero_grad()",
           {"train_model"}),
    # get_accuracy
    mutant("accuracy with the argmax over the batch", DIGITS,
           "return (scores.argmax(dim=1) == labels).float().mean().item()",
           "return (scores.argmax(dim=0)[:len(labels)] == labels).float().mean().item()",
           {"get_accuracy"}),
    mutant("accuracy as a count", DIGITS,
           "return (scores.argmax(dim=1) == labels).float().mean().item()",
           "return (scores.argmax(dim=1) == labels).float().sum().item()",
           {"get_accuracy"}),
    mutant("accuracy in percent", DIGITS,
           "return (scores.argmax(dim=1) == labels).float().mean().item()",
           "return 100 * (scores.argmax(dim=1) == labels).float().mean().item()",
           {"get_accuracy"}),
    mutant("accuracy compares the highest score with the label", DIGITS,
           "return (scores.argmax(dim=1) == labels).float().mean().item()",
           "return (scores.max(dim=1).values == labels).float().mean().item()",
           {"get_accuracy"}),
    # DropoutCNN
    mutant("dropout left on at evaluation", CNN,
           "        x = self.dropout(self.lrelu(self.l1(x)))\n",
           "        x = F.dropout(self.lrelu(self.l1(x)), self.dropout.p)\n",
           {"dropout_cnn"}),
    mutant("dropout probability fixed at 0.5", CNN,
           "self.dropout = nn.Dropout(drop_prob)", "self.dropout = nn.Dropout(0.5)",
           {"dropout_cnn"}),
    mutant("dropout given the keep probability", CNN,
           "self.dropout = nn.Dropout(drop_prob)", "self.dropout = nn.Dropout(1 - drop_prob)",
           {"dropout_cnn"}),
    mutant("leaky ReLU with the default slope", CNN,
           "        self.lrelu = nn.LeakyReLU(0.1)\n        self.dropout",
           "        self.lrelu = nn.LeakyReLU()\n        self.dropout",
           {"dropout_cnn"}),
    mutant("no dropout at all", CNN,
           "self.dropout = nn.Dropout(drop_prob)", "self.dropout = nn.Identity()",
           {"dropout_cnn"}),
    # train_cnn
    mutant("epoch loss of the last batch only", CNN,
           "epoch_losses.append(total / len(loader))", "epoch_losses.append(loss.item())",
           {"train_cnn"}),
    mutant("epoch loss summed over the batches", CNN,
           "epoch_losses.append(total / len(loader))", "epoch_losses.append(total)",
           {"train_cnn"}),
    mutant("train_cnn never clears the gradients", CNN,
           "            optimiser.zero_grad()\n            loss = loss_fn(model(x), y)",
           "            loss = loss_fn(model(x), y)",
           {"train_cnn"}),
    mutant("train_cnn leaves the model in evaluation mode", CNN,
           "        model.train()\n        total = 0.0", "        total = 0.0",
           {"train_cnn"}),
    mutant("train_cnn trains 10 epochs whatever it is told", CNN,
           "    for epoch in range(epochs):\n        model.train()",
           "    for epoch in range(10):\n        model.train()",
           {"train_cnn"}),
    # get_augmentations
    mutant("a single augmentation", CIFAR,
           """        transforms.RandomCrop(32, padding=4),
        transforms.ColorJitter(brightness=0.2, contrast=0.2),
""", "",
           {"augmentations"}),
    mutant("augmentations that resize to 28 pixels", CIFAR,
           "transforms.RandomCrop(32, padding=4),", "transforms.RandomCrop(28),",
           {"augmentations"}),
    mutant("grayscale augmentation (one channel)", CIFAR,
           "transforms.ColorJitter(brightness=0.2, contrast=0.2),", "transforms.Grayscale(),",
           {"augmentations"}),
    mutant("augmentations that are not random", CIFAR,
           """        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(32, padding=4),
        transforms.ColorJitter(brightness=0.2, contrast=0.2),""",
           """        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        transforms.CenterCrop(32),""",
           {"augmentations"}),
    # CIFARCNN
    mutant("CIFARCNN with ReLU in the fully connected part", CIFAR,
           """            nn.Linear(64, 256), nn.LeakyReLU(0.1),
            nn.Linear(256, 128), nn.LeakyReLU(0.1),""",
           """            nn.Linear(64, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),""",
           {"cifar_cnn"}),
    mutant("CIFARCNN with a softmax at the end", CIFAR,
           "            nn.Linear(128, classes))", "            nn.Linear(128, classes), nn.Softmax(dim=1))",
           {"cifar_cnn"}),
    mutant("CIFARCNN pools before the second convolution only", CIFAR,
           "nn.Conv2d(3, 32, 3), nn.MaxPool2d(2), nn.LeakyReLU(0.1),",
           "nn.Conv2d(3, 32, 3), nn.LeakyReLU(0.1), nn.MaxPool2d(3),",
           {"cifar_cnn"}),
    mutant("CIFARCNN with the default leaky slope in conv", CIFAR,
           "nn.Conv2d(32, 64, 3), nn.MaxPool2d(2), nn.LeakyReLU(0.1))",
           "nn.Conv2d(32, 64, 3), nn.MaxPool2d(2), nn.LeakyReLU())",
           {"cifar_cnn"}),
    # rnn_cell_forward
    mutant("cell softmax over the batch", CELL,
           "yt_pred = torch.softmax(Why.T @ h_next + by, dim=0)",
           "yt_pred = torch.softmax(Why.T @ h_next + by, dim=1)",
           {"rnn_cell"}),
    mutant("cell with Whh not transposed", CELL,
           "h_next = torch.tanh(Whh.T @ h_prev + Wxh.T @ xt + bh)",
           "h_next = torch.tanh(Whh @ h_prev + Wxh.T @ xt + bh)",
           {"rnn_cell"}),
    mutant("cell without the hidden bias", CELL,
           "h_next = torch.tanh(Whh.T @ h_prev + Wxh.T @ xt + bh)",
           "h_next = torch.tanh(Whh.T @ h_prev + Wxh.T @ xt)",
           {"rnn_cell"}),
    mutant("cell predicts from the previous state", CELL,
           "yt_pred = torch.softmax(Why.T @ h_next + by, dim=0)",
           "yt_pred = torch.softmax(Why.T @ h_prev + by, dim=0)",
           {"rnn_cell"}),
    # SineRNN
    mutant("SineRNN reads the first step's state", SINE,
           "return self.fc(states[:, -1, :])", "return self.fc(states[:, 0, :])",
           {"sine_rnn"}),
    mutant("SineRNN averages the states over time", SINE,
           "return self.fc(states[:, -1, :])", "return self.fc(states.mean(dim=1))",
           {"sine_rnn"}),
    mutant("SineRNN without batch_first", SINE,
           "self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)",
           "self.rnn = nn.RNN(input_size, hidden_size)",
           {"sine_rnn"}),
    mutant("SineRNN with ReLU units", SINE,
           "self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)",
           "self.rnn = nn.RNN(input_size, hidden_size, nonlinearity='relu', batch_first=True)",
           {"sine_rnn"}),
    # PositionalEncoding
    mutant("sine and cosine swapped", POSITIONAL,
           """        encoding[:, 0::2] = torch.sin(position * rate)
        encoding[:, 1::2] = torch.cos(position * rate)""",
           """        encoding[:, 0::2] = torch.cos(position * rate)
        encoding[:, 1::2] = torch.sin(position * rate)""",
           {"positional_encoding"}),
    mutant("frequencies with k instead of 2k", POSITIONAL,
           "rate = torch.pow(10000.0, -torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / d)",
           "rate = torch.pow(10000.0, -torch.arange(0, d // 2, device=x.device, dtype=x.dtype) / d)",
           {"positional_encoding"}),
    mutant("positions counted from 1", POSITIONAL,
           "position = torch.arange(length, device=x.device, dtype=x.dtype).unsqueeze(1)",
           "position = torch.arange(1, length + 1, device=x.device, dtype=x.dtype).unsqueeze(1)",
           {"positional_encoding"}),
    mutant("the encoding returned instead of added", POSITIONAL,
           "        return x + encoding\n", "        return encoding.expand_as(x)\n",
           {"positional_encoding"}),
    mutant("frequencies scaled by the sequence length, not the width", POSITIONAL,
           "rate = torch.pow(10000.0, -torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / d)",
           "rate = torch.pow(10000.0, -torch.arange(0, d, 2, device=x.device, dtype=x.dtype) / length)",
           {"positional_encoding"}),
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
