#include <turbojpeg.h>

