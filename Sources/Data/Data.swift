import CArchive
import CPNG
import CTurboJPEG
import Torch
