import Testing

@Test func placeholderExperiments() {}
