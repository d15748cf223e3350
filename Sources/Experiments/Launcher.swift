import Foundation
import Torch

#if canImport(Glibc)
  import Glibc
#endif

/// `cmapkd launch --nproc N <subcommand> …`: starts N local workers of this same program with
/// the environment torchrun gives (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR,
/// MASTER_PORT) and waits for them. When one worker fails, the others are stopped (SIGTERM,
/// then SIGKILL) and the launcher exits with the failed worker's status: a job never hangs on
/// a dead rank.
public enum Launcher {
  public struct Failure: Error, CustomStringConvertible {
    public var rank: Int
    public var status: Int32
    public var description: String
  }

  /// The data-parallel group this process belongs to, from the environment (nil for one process).
  public static func groupFromEnvironment() throws -> ProcessGroup? {
    bindToLauncher()
    do { return try ProcessGroup.fromEnvironment() } catch {
      throw TrainingError("could not join the data-parallel group: \(error)")
    }
  }

  /// A worker started by `launch` dies with it: killed with SIGKILL when the launcher dies,
  /// even by SIGKILL (Linux's parent-death signal), so no worker is left holding the port or
  /// waiting in a collective.
  static func bindToLauncher() {
    guard let text = ProcessInfo.processInfo.environment["CMAPKD_LAUNCHER_PID"], let launcher = Int32(text) else { return }
    ProcessGroup.dieWithParent()
    // The launcher may have died before the request took effect.
    if getppid() != launcher { exit(1) }
  }

  /// Runs `arguments` (a subcommand and its options) in `processes` workers and returns when
  /// all have succeeded; throws `Failure` naming the first worker that did not.
  public static func run(
    processes: Int, arguments: [String], port: Int? = nil, executable: String? = nil, log: (String) -> Void = { _ in }
  ) throws {
    guard processes >= 1 else { throw ConfigError("launch: --nproc must be at least 1") }
    guard let first = arguments.first, !first.hasPrefix("-") else {
      throw ConfigError("launch: name the subcommand to run, e.g. `cmapkd launch --nproc 2 distill --config …`")
    }
    let program = try executable ?? Self.ownExecutable()
    let masterPort = try port ?? ProcessGroup.freePort()
    var base = ProcessInfo.processInfo.environment
    // LibTorch's CPU thread pool honours OMP_NUM_THREADS: share the cores instead of
    // oversubscribing them N times (torchrun does the same).
    if base["OMP_NUM_THREADS"] == nil {
      base["OMP_NUM_THREADS"] = "\(max(1, ProcessInfo.processInfo.activeProcessorCount / processes))"
    }
    log("launch: \(processes) workers of \(program) \(arguments.joined(separator: " ")) (127.0.0.1:\(masterPort), OMP_NUM_THREADS=\(base["OMP_NUM_THREADS"]!))")
    base["CMAPKD_LAUNCHER_PID"] = "\(getpid())"
    var children: [pid_t: Int] = [:]
    for rank in 0..<processes {
      var env = base
      env["RANK"] = "\(rank)"
      env["LOCAL_RANK"] = "\(rank)"
      env["WORLD_SIZE"] = "\(processes)"
      env["LOCAL_WORLD_SIZE"] = "\(processes)"
      env["MASTER_ADDR"] = "127.0.0.1"
      env["MASTER_PORT"] = "\(masterPort)"
      let pid = try spawn(program, [program] + arguments, environment: env)
      children[pid] = rank
    }
    var failure: Failure?
    while !children.isEmpty {
      var status: Int32 = 0
      let pid = waitpid(-1, &status, 0)
      if pid < 0 {
        if errno == EINTR { continue }
        break
      }
      guard let rank = children.removeValue(forKey: pid) else { continue }
      let exited = (status & 0x7f) == 0
      let code = exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
      if code != 0, failure == nil {
        let how = exited ? "exited with status \(code)" : "was killed by signal \(status & 0x7f)"
        failure = Failure(
          rank: rank, status: code,
          description: "launch: worker \(rank) \(how); stopped the other \(children.count) worker(s)")
        stop(Array(children.keys))
      }
    }
    if let failure { throw failure }
  }

  /// SIGTERM to every worker, SIGKILL to any still running 5 s later.
  static func stop(_ pids: [pid_t]) {
    for pid in pids { kill(pid, SIGTERM) }
    let deadline = Date().addingTimeInterval(5)
    var running = Set(pids)
    while !running.isEmpty, Date() < deadline {
      for pid in running where kill(pid, 0) != 0 { running.remove(pid) }
      usleep(50_000)
    }
    for pid in running { kill(pid, SIGKILL) }
  }

  static func spawn(_ program: String, _ arguments: [String], environment: [String: String]) throws -> pid_t {
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      argv.forEach { free($0) }
      envp.forEach { free($0) }
    }
    let status = posix_spawn(&pid, program, nil, nil, argv, envp)
    guard status == 0 else { throw TrainingError("launch: cannot start \(program): \(String(cString: strerror(status)))") }
    return pid
  }

  static func ownExecutable() throws -> String {
    let path = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    return path
  }
}
