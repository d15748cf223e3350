// Temporary: replaced as the evaluation and report pieces land (this session).
public enum Evaluate {
  public static func checkpoint(_ path: String, config: ExperimentConfig, asTeacher: Bool) throws -> [String: Double] { throw TrainingError("pending") }
  public static func bench(_ config: ExperimentConfig) throws { throw TrainingError("pending") }
}
