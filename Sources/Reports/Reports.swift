// Metrics logs, TensorBoard event files, plots and report tables.
