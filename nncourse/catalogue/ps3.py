"""Realistic wrong implementations of ps3 (mutants) and correct ones written differently."""

from nncourse.catalogue import mutants_of

mutant = mutants_of("ps3")


SIGMOID_FORWARD = """        x = x.view(-1, self.d_in)
        x = torch.sigmoid(self.linear1(x))
        x = torch.sigmoid(self.linear2(x))
        x = torch.sigmoid(self.linear3(x))
        return self.linear4(x)"""

MUTANTS = [
    mutant("sigmoid network without the last activation", "ann_solution",
           "        x = torch.sigmoid(self.linear3(x))\n", "        x = self.linear3(x)\n",
           {"ann_sigmoid"},
           explanation="The third hidden layer has no sigmoid after it."),
    mutant("sigmoid network with a ReLU in the middle", "ann_solution",
           "x = torch.sigmoid(self.linear2(x))", "x = torch.relu(self.linear2(x))",
           {"ann_sigmoid"},
           explanation=("The second hidden layer uses a ReLU where the network asks for a "
                        "sigmoid.")),
    mutant("sigmoid network with a sigmoid on the output", "ann_solution",
           "        return self.linear4(x)", "        return torch.sigmoid(self.linear4(x))",
           {"ann_sigmoid"},
           explanation=("A sigmoid is applied to the output layer; the network returns the last "
                        "linear layer's scores as they are.")),
    mutant("sigmoid network with a hidden layer of 1000 units", "ann_solution",
           """        self.linear2 = nn.Linear(512, 1024)
        self.linear3 = nn.Linear(1024, 512)""",
           """        self.linear2 = nn.Linear(512, 1000)
        self.linear3 = nn.Linear(1000, 512)""",
           {"ann_sigmoid"},
           explanation="The middle hidden layer has 1000 units instead of 1024."),
    mutant("sigmoid network that flattens to 784 values whatever d_in", "ann_solution",
           "x = x.view(-1, self.d_in)", "x = x.view(-1, 784)",
           {"ann_sigmoid"},
           explanation=("The input is flattened to 784 values whatever d_in is, so the network "
                        "works only for 28 x 28 images.")),
    mutant("ReLU network with sigmoids", "ann_solution",
           "nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, d_out))",
           "nn.Linear(1024, 512), nn.Sigmoid(), nn.Linear(512, d_out))",
           {"ann_relu"},
           explanation=("The last hidden layer uses a sigmoid where the network asks for a "
                        "ReLU.")),
    mutant("ReLU network with a ReLU on the output", "ann_solution",
           "nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, d_out))",
           "nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, d_out), nn.ReLU())",
           {"ann_relu"},
           explanation=("A ReLU is applied to the output, so no score can be negative; the "
                        "network returns the last linear layer's scores.")),
    mutant("ReLU network without flattening", "ann_solution",
           "            nn.Flatten(), nn.Linear(d_in, 512),", "            nn.Linear(d_in, 512),",
           {"ann_relu"},
           explanation=("The network does not flatten its input, so images of shape (N, 1, 28, "
                        "28) reach the first linear layer unflattened.")),
    mutant("ReLU network without biases in the first layer", "ann_solution",
           "nn.Flatten(), nn.Linear(d_in, 512),", "nn.Flatten(), nn.Linear(d_in, 512, bias=False),",
           {"ann_relu"},
           explanation="The first linear layer is created without a bias."),
    mutant("optimiser without momentum", "train_and_test_solution",
           """    optimizer = optim.SGD(model.parameters(), lr=hyperparameters["lr"],
                          momentum=hyperparameters["momentum"])""",
           """    optimizer = optim.SGD(model.parameters(), lr=hyperparameters["lr"])""",
           {"train_and_test"},
           explanation=("The optimiser is created without the momentum from the "
                        "hyperparameters.")),
    mutant("learning rate fixed at 0.01", "train_and_test_solution",
           'lr=hyperparameters["lr"],', "lr=0.01,",
           {"train_and_test"},
           explanation=("The optimiser's learning rate is fixed at 0.01 instead of "
                        'hyperparameters["lr"].')),
    mutant("a new optimiser every epoch", "train_and_test_solution",
           """    optimizer = optim.SGD(model.parameters(), lr=hyperparameters["lr"],
                          momentum=hyperparameters["momentum"])
    grads = ([], [], [])
    for epoch in range(1, hyperparameters["epochs"] + 1):""",
           """    grads = ([], [], [])
    for epoch in range(1, hyperparameters["epochs"] + 1):
        optimizer = optim.SGD(model.parameters(), lr=hyperparameters["lr"],
                              momentum=hyperparameters["momentum"])""",
           {"train_and_test"},
           explanation=("A new optimiser is created for every epoch, which throws away the "
                        "momentum built up so far.")),
    mutant("one epoch too few", "train_and_test_solution",
           'range(1, hyperparameters["epochs"] + 1)', 'range(1, hyperparameters["epochs"])',
           {"train_and_test"},
           explanation='The loop trains one epoch fewer than hyperparameters["epochs"].'),
    mutant("only the last epoch's gradients returned", "train_and_test_solution",
           """        for record, new in zip(grads, train(model, train_loader, optimizer, epoch)):
            record.extend(new)""",
           """        grads = train(model, train_loader, optimizer, epoch)""",
           {"train_and_test"},
           explanation=("The function returns only the gradients of the last epoch, not those "
                        "of every epoch.")),
    mutant("test never called", "train_and_test_solution",
           "        test(model, test_loader)\n", "",
           {"train_and_test"},
           explanation="The model is never tested after an epoch."),
]

KEY = {"a_": True, "b_": False, "c_": True, "d_": True, "e_": False}
for _name, _answer in KEY.items():
    _line = "%s = %s" % (_name, _answer)
    MUTANTS += [
        mutant("%s answered %s" % (_name, not _answer), "quiz_solution", _line,
               "%s = %s" % (_name, not _answer), {"quiz_" + _name.rstrip("_")},
               undiagnosable="a wrong True/False answer: an explanation could only give the "
                             "right answer away (the check's message says which is wrong)"),
        mutant("%s answered with a string" % _name, "quiz_solution", _line,
               "%s = %r" % (_name, str(_answer)), {"quiz_" + _name.rstrip("_")},
               explanation="%s is a string; the answer is True or False, a bool, without quotes."
                           % _name),
        mutant("%s left as None" % _name, "quiz_solution", _line, "%s = None" % _name,
               {"quiz_" + _name.rstrip("_")},
               explanation="%s is still None: set it to True or False." % _name),
    ]

EQUIVALENT = [
    ("ann_solution", """        self.d_in = d_in
        self.linear1 = nn.Linear(d_in, 512)
        self.linear2 = nn.Linear(512, 1024)
        self.linear3 = nn.Linear(1024, 512)
        self.linear4 = nn.Linear(512, d_out)""",
     """        self.d_in = d_in
        self.linear4 = nn.Linear(512, d_out)  # defined out of order on purpose
        self.linear3 = nn.Linear(1024, 512)
        self.linear2 = nn.Linear(512, 1024)
        self.linear1 = nn.Linear(d_in, 512)
        self.act = nn.Sigmoid()"""),
    ("ann_solution", SIGMOID_FORWARD,
     """        x = torch.flatten(x, start_dim=1)
        for layer in (self.linear1, self.linear2, self.linear3):
            x = 1 / (1 + torch.exp(-layer(x)))
        return self.linear4(x)"""),
    ("ann_solution", """        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(d_in, 512), nn.ReLU(), nn.Linear(512, 1024), nn.ReLU(),
            nn.Linear(1024, 512), nn.ReLU(), nn.Linear(512, d_out))""",
     """        self.fc1, self.fc2 = nn.Linear(d_in, 512), nn.Linear(512, 1024)
        self.fc3, self.fc4 = nn.Linear(1024, 512), nn.Linear(512, d_out)
        self.layers = lambda x: self.fc4(F.relu(self.fc3(F.relu(self.fc2(F.relu(
            self.fc1(x.reshape(x.shape[0], -1))))))))"""),
    ("train_and_test_solution", """    grads = ([], [], [])
    for epoch in range(1, hyperparameters["epochs"] + 1):
        for record, new in zip(grads, train(model, train_loader, optimizer, epoch)):
            record.extend(new)
        test(model, test_loader)
    return grads""",
     """    g1, g2, g3 = [], [], []
    epoch = 1
    while epoch <= hyperparameters["epochs"]:
        a, b, c = train(model, train_loader, optimizer, epoch)
        g1 += a
        g2 += b
        g3 += c
        test(model, test_loader)
        epoch += 1
    return g1, g2, g3"""),
]
