/* The real node's pod sandbox process: holds the pod's namespaces open until it is told to stop.
 * Sleeps in pause(2), exits 0 on SIGINT/SIGTERM, and reaps children re-parented to it (it is
 * PID 1 of the pod's PID namespace when the pod shares one). Built static by `cluster build`. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
	(void)sig;
	_exit(0);
}

static void reap(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(void) {
	struct sigaction term = {.sa_handler = stop}, child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
	if (sigaction(SIGINT, &term, NULL) || sigaction(SIGTERM, &term, NULL) ||
	    sigaction(SIGCHLD, &child, NULL))
		return 1;
	for (;;)
		pause();
}
