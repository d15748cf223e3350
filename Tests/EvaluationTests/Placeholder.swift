import Testing

@Test func placeholderEvaluation() {}
