// Experiment configs, the training runner and checkpoints.
