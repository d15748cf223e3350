import Torch
import TorchNN
