"""Qt-free decisions of the FCDTrain panel (see :mod:`.train_presenter`)."""
