#pragma once
// Ctrl-C (SIGINT) and SIGTERM are taken by one watcher thread (sigwait), never delivered to a
// compute thread: start_interrupt_watcher() blocks both before any other thread exists, so every
// thread the program starts inherits the block. By default the first signal ends the program with
// 128 + signal. A command that stops cleanly (train) turns graceful handling on: the first signal
// only sets interrupt_requested(), a second one ends the program at once.
//
// Why not a plain signal handler: with one, `reformer train` aborted on Ctrl-C in 6 of 20 runs
// with glibc reporting heap corruption ("corrupted size vs. prev_size") inside oneDNN's sgemm of
// the interrupted step; with the watcher thread 0 of 24 did (Cli.CtrlCSavesACheckpointAndExits's
// command line in a loop, by hand). The cause inside the handler path is not understood.
namespace reformer::cli {

void start_interrupt_watcher();
void set_graceful_interrupts(bool on);
bool interrupt_requested();
void clear_interrupt();

}  // namespace reformer::cli
