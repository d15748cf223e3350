print("DistillBench")
