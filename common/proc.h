/*
 * proc — small facts about child processes shared by the controller and the
 * backends.
 *
 * Owns asking whether a child has exited without reaping it (so the one
 * place that reaps still gets its status) and resetting a fresh child's
 * signal dispositions and mask. Never reaps, never sends a signal.
 */
#ifndef BOTTLE_COMMON_PROC_H
#define BOTTLE_COMMON_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Whether child pid has exited (or is not ours); the zombie is left for its waiter. */
bool proc_child_exited(pid_t pid);

/*
 * In a fresh child before exec: every signal back to its default action
 * (handlers and ignores of the parent must not reach the program) and, when
 * unblock is true, an empty signal mask.
 */
void proc_reset_signals(bool unblock);

#endif
