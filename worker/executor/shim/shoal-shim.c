/*
 * shoal-shim: Shoal's per-container monitor (one per task) and the launcher that forks them.
 *
 *   shoal-shim launcher RUNC RUNC_ROOT
 *
 * The launcher reads one request per line on stdin, fields separated by \037:
 *   MODE TASK_DIR CONTAINER_ID MOUNT_CWD MOUNT_OPTIONS
 * (MODE `now` runs the container at once, anything else waits for `start`; both mount fields empty:
 * the root is mounted already). For each request it forks a shim (no exec: a shim shares the
 * launcher's pages), writes the shim's PID to TASK_DIR/shim.pid and answers with it on stdout
 * (or with `error: ...` when the request cannot be read). It reaps the shims that end. At EOF (the
 * daemon went away) it stops reading and lives on only until its last shim has ended, so no shim is
 * left a zombie of PID 1. The launcher is a child subreaper too: a container whose shim was killed
 * becomes its child, not PID 1's, and is reaped.
 *
 * A shim keeps the on-disk protocol the executor (shim.ts, runc-executor.ts) reads:
 *  1. stdin /dev/null, stdout and stderr appended to shim.log;
 *  2. makes stdout.fifo, stderr.fifo and ack.fifo (mode 0600) unless they are there, and holds all
 *     three open read-write for its whole life: the container never gets SIGPIPE while no executor
 *     reads, and opening ack.fifo for writing always finds a reader while the shim lives;
 *  3. mounts the overlay root on TASK_DIR/bundle/rootfs when asked (relative lower dirs resolve in
 *     MOUNT_CWD);
 *  4. creates shim.ready, or shim.failed once shim.why says why (exit 110, 111, 112);
 *  5. unless MODE is `now`, waits for one line on ack.fifo: `start` goes on, anything else ends it;
 *  6. becomes a child subreaper and runs `runc run -d --keep --pid-file pid` with the FIFOs as the
 *     container's stdout and stderr. runc exits once the container runs; its init, a child of runc,
 *     is then reparented to the shim, which waits for it. `--keep` leaves the stopped container
 *     (and its cgroup, for the OOM-kill counter) until `runc delete`;
 *  7. writes the status to exit (via exit.tmp and rename): the init's exit code, 128+N when signal
 *     N killed it, or runc's own non-zero code when the container did not start;
 *  8. waits for one more line on ack.fifo (the executor has seen the status), then ends, closing
 *     the FIFOs so the executor's readers reach EOF once the container's writes are read.
 *
 * No Go runc process stays per container: what remains is this small process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIELD_SEP '\037'
#define LINE_MAX_BYTES 65536 /* a request longer than this is answered with an error */
/*
 * Path buffers live on the stack; each page of it a shim writes becomes its own copy, so they are
 * small: a task directory longer than DIR_MAX_BYTES is refused by the launcher.
 */
#define PATH_BYTES 1024
#define DIR_MAX_BYTES (PATH_BYTES - 64)

static const char *runc_binary;
static const char *runc_root;

/* ------------------------------------------------------------------------------------ helpers */

/* write(2) all of buf, retrying on EINTR and short writes. */
static int write_all(int fd, const char *buf, size_t len) {
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A line on stderr (shim.log). */
static void say(const char *text) {
	write_all(2, text, strlen(text));
}

/* Formats into buf (always terminated); truncates what does not fit. */
static void fmt(char *buf, size_t size, const char *format, ...) {
	va_list ap;
	va_start(ap, format);
	vsnprintf(buf, size, format, ap);
	va_end(ap);
}

/* Writes text to path (created 0600, truncated); -1 on failure. */
static int write_file(const char *path, const char *text) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) return -1;
	int rc = write_all(fd, text, strlen(text));
	if (close(fd) < 0) rc = -1;
	return rc;
}

/* Records why the shim failed (shim.why, then shim.failed) and ends it with code. */
static void fail(const char *dir, int code, const char *why) {
	char path[PATH_BYTES];
	char line[PATH_BYTES + 128];
	fmt(line, sizeof line, "%s\n", why);
	fmt(path, sizeof path, "%s/shim.why", dir);
	write_file(path, line);
	fmt(path, sizeof path, "%s/shim.failed", dir);
	write_file(path, "");
	say(line);
	_exit(code);
}

/*
 * Reads one line from fd byte by byte (so a later line stays in the FIFO for the next read) into
 * buf, without the newline. Returns its length, or -1 at EOF or on error with nothing read.
 */
static ssize_t read_line(int fd, char *buf, size_t size) {
	size_t len = 0;
	for (;;) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return len > 0 ? (ssize_t)len : -1;
		if (c == '\n') break;
		if (len + 1 < size) buf[len++] = c;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

/* A wait status as runc reports it: the exit code, or 128+N for signal N. */
static int exit_code(int status) {
	if (WIFEXITED(status)) return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
	return 255;
}

/* Makes path a FIFO unless it is one; 0 when it is a FIFO afterwards. */
static int ensure_fifo(const char *path) {
	struct stat st;
	if (mkfifo(path, 0600) < 0 && errno != EEXIST) return -1;
	if (stat(path, &st) < 0 || !S_ISFIFO(st.st_mode)) return -1;
	return 0;
}

/* ---------------------------------------------------------------------------------------- shim */

static void shim(const char *dir, const char *id, const char *mode, const char *mount_cwd, const char *mount_opts) {
	char path[PATH_BYTES];
	char msg[PATH_BYTES + 256];
	int fds[3];
	static const char *const fifos[3] = {"stdout.fifo", "stderr.fifo", "ack.fifo"};

	/* 1. stdio: nothing from the launcher's pipes stays open here. */
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	fmt(path, sizeof path, "%s/shim.log", dir);
	int logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) logfd = devnull; /* never keep the launcher's pipe to the daemon */
	if (devnull >= 0) dup2(devnull, 0);
	if (logfd >= 0) {
		dup2(logfd, 1);
		dup2(logfd, 2);
	}
	if (logfd > 2 && logfd != devnull) close(logfd);
	if (devnull > 2) close(devnull);
	if (chdir("/") < 0) { /* keep going: only the mount below needs a directory */ }

	/* 2. the FIFOs, held read-write (opening read-write never blocks). */
	for (int i = 0; i < 3; i++) {
		fmt(path, sizeof path, "%s/%s", dir, fifos[i]);
		if (ensure_fifo(path) < 0) fail(dir, 110, "mkfifo failed");
	}
	for (int i = 0; i < 3; i++) {
		fmt(path, sizeof path, "%s/%s", dir, fifos[i]);
		fds[i] = open(path, O_RDWR | O_CLOEXEC);
		if (fds[i] < 0) fail(dir, 111, "open FIFOs failed");
	}
	int ack = fds[2];

	/* 3. the overlay root. */
	if (mount_opts[0] != '\0') {
		char target[PATH_BYTES];
		fmt(target, sizeof target, "%s/bundle/rootfs", dir);
		if (chdir(mount_cwd) < 0 || mount("overlay", target, "overlay", 0, mount_opts) < 0) {
			fmt(msg, sizeof msg, "mount overlay on %s failed: %s", target, strerror(errno));
			fail(dir, 112, msg);
		}
		if (chdir("/") < 0) { /* as above */ }
	}

	/* 4. ready. */
	fmt(path, sizeof path, "%s/shim.ready", dir);
	if (write_file(path, "") < 0) fail(dir, 113, "create shim.ready failed");

	/* 5. wait for `start`. */
	char line[64];
	if (strcmp(mode, "now") != 0) {
		if (read_line(ack, line, sizeof line) < 0 || strcmp(line, "start") != 0) _exit(0);
	}

	/* 6. runc run -d; the container's init comes back to us when runc exits. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		fmt(msg, sizeof msg, "shoal-shim: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
		say(msg);
	}
	char log_path[PATH_BYTES], bundle[PATH_BYTES], pid_path[PATH_BYTES];
	fmt(log_path, sizeof log_path, "%s/runc.log", dir);
	fmt(bundle, sizeof bundle, "%s/bundle", dir);
	fmt(pid_path, sizeof pid_path, "%s/pid", dir);
	int code;
	pid_t runc = fork();
	if (runc < 0) {
		fmt(msg, sizeof msg, "shoal-shim: fork: %s\n", strerror(errno));
		say(msg);
		code = 255;
	} else if (runc == 0) {
		/* The container gets runc's stdio: /dev/null, stdout.fifo, stderr.fifo. */
		int in = open("/dev/null", O_RDONLY);
		if (in < 0 || dup2(in, 0) < 0 || dup2(fds[0], 1) < 0 || dup2(fds[1], 2) < 0) _exit(126);
		if (in > 2) close(in);
		execlp(runc_binary, runc_binary, "--root", runc_root, "--log", log_path, "--log-format", "json", "run", "-d", "--keep", "--bundle", bundle,
		       "--pid-file", pid_path, id, (char *)NULL);
		fmt(msg, sizeof msg, "shoal-shim: exec %s: %s\n", runc_binary, strerror(errno));
		say(msg);
		_exit(127);
	} else {
		int status;
		while (waitpid(runc, &status, 0) < 0 && errno == EINTR) {}
		code = exit_code(status);
		if (code == 0) {
			/*
			 * runc wrote the init's PID (tmp file + rename) before starting it. By the time runc's
			 * own exit is reported, the init (even one that already ended) is our child.
			 */
			char text[32] = "";
			int fd = open(pid_path, O_RDONLY | O_CLOEXEC);
			ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
			if (fd >= 0) close(fd);
			pid_t init = n > 0 ? (pid_t)strtol(text, NULL, 10) : 0;
			code = 255;
			if (init <= 0) {
				say("shoal-shim: runc ran the container but wrote no PID\n");
			} else {
				for (;;) {
					pid_t got = waitpid(-1, &status, 0);
					if (got < 0 && errno == EINTR) continue;
					if (got < 0) {
						say("shoal-shim: lost the container's init (not our child)\n");
						break;
					}
					if (got == init) {
						code = exit_code(status);
						break;
					}
					/* another orphan reparented to us (one of runc's helpers): reaped, go on */
				}
			}
		}
	}
	while (waitpid(-1, NULL, WNOHANG) > 0) {}

	/* 7. the status file. */
	char tmp[PATH_BYTES], exit_path[PATH_BYTES], text[16];
	fmt(tmp, sizeof tmp, "%s/exit.tmp", dir);
	fmt(exit_path, sizeof exit_path, "%s/exit", dir);
	fmt(text, sizeof text, "%d\n", code);
	if (write_file(tmp, text) < 0 || rename(tmp, exit_path) < 0) {
		fmt(msg, sizeof msg, "shoal-shim: write %s: %s\n", exit_path, strerror(errno));
		say(msg);
	}

	/* 8. linger until the executor has seen it. */
	read_line(ack, line, sizeof line);
	while (waitpid(-1, NULL, WNOHANG) > 0) {}
	_exit(0);
}

/* ------------------------------------------------------------------------------------ launcher */

/* Reaps every shim (or adopted orphan) that has ended; async-signal-safe. */
static void on_sigchld(int sig) {
	(void)sig;
	int saved = errno;
	while (waitpid(-1, NULL, WNOHANG) > 0) {}
	errno = saved;
}

/* Splits line at FIELD_SEP into exactly n fields (in place); 0 when it has n. */
static int split(char *line, char **fields, int n) {
	int i = 0;
	fields[i++] = line;
	for (char *p = line; *p != '\0'; p++) {
		if (*p != FIELD_SEP) continue;
		if (i == n) return -1;
		*p = '\0';
		fields[i++] = p + 1;
	}
	return i == n ? 0 : -1;
}

static void answer(const char *text) {
	write_all(1, text, strlen(text));
}

/* Handles one request line: forks a shim, records and answers its PID. */
static void launch(char *line, sigset_t *chld) {
	char *f[5];
	char reply[PATH_BYTES + 64];
	if (split(line, f, 5) < 0 || f[1][0] != '/' || f[2][0] == '\0') {
		answer("error: malformed request\n");
		return;
	}
	if (strlen(f[1]) > DIR_MAX_BYTES || strlen(f[2]) > 128) {
		answer("error: task directory or container id too long\n");
		return;
	}
	/* SIGCHLD waits until the shim's handler is reset in the child. */
	sigset_t old;
	sigprocmask(SIG_BLOCK, chld, &old);
	pid_t pid = fork();
	if (pid == 0) {
		/* The shim waits for its own children, and runc and the container get default dispositions. */
		signal(SIGCHLD, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
		shim(f[1], f[2], f[0], f[3], f[4]);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		fmt(reply, sizeof reply, "error: fork: %s\n", strerror(errno));
		answer(reply);
		return;
	}
	char path[PATH_BYTES], text[32];
	fmt(path, sizeof path, "%s/shim.pid", f[1]);
	fmt(text, sizeof text, "%d\n", (int)pid);
	write_file(path, text);
	answer(text);
}

static int launcher(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	/* The daemon may be gone when an answer is written: EPIPE, not death. */
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (chdir("/") < 0) { /* not fatal */ }

	/* Requests in chunks; a line is handled once its newline is in. */
	char *buf = malloc(LINE_MAX_BYTES);
	if (buf == NULL) return 1;
	size_t len = 0;
	int overlong = 0;
	char chunk[4096];
	for (;;) {
		ssize_t n = read(0, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		for (ssize_t i = 0; i < n; i++) {
			char c = chunk[i];
			if (c != '\n') {
				if (len + 1 < LINE_MAX_BYTES) buf[len++] = c;
				else overlong = 1;
				continue;
			}
			buf[len] = '\0';
			if (overlong) answer("error: request too long\n");
			else launch(buf, &chld);
			len = 0;
			overlong = 0;
		}
	}
	free(buf);
	/* EOF: no more requests; stay (reaping) until the last shim has ended. */
	close(0);
	close(1);
	for (;;) {
		sigset_t old;
		sigprocmask(SIG_BLOCK, &chld, &old);
		pid_t got = waitpid(-1, NULL, 0);
		int err = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (got < 0 && err == ECHILD) break;
	}
	return 0;
}

int main(int argc, char **argv) {
	if (argc == 4 && strcmp(argv[1], "launcher") == 0) {
		runc_binary = argv[2];
		runc_root = argv[3];
		return launcher();
	}
	fprintf(stderr, "usage: %s launcher RUNC RUNC_ROOT\n", argv[0]);
	return 2;
}
