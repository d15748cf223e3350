// Retrieval, zero-shot and efficiency evaluation.
