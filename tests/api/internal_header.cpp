// Must NOT compile: built with the CLI's include directories, an internal header is out of reach.
// The test cli_cannot_include_internal_headers expects this build to fail for that reason.
#include "train/trainer.h"

int main() { return 0; }
