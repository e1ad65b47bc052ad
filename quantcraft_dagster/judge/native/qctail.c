/* qctail: keeps an engine's output tail inside the engine's own sandbox.
 *
 *   qctail TAIL_BYTES DUMP_AFTER_MS TERM_ALL UIDS ENGINE [ARGS...]
 *
 * Runs ENGINE with its stdout and stderr on a pipe it drains into a ring of the last TAIL_BYTES,
 * and writes that tail to its own stdout once: when ENGINE exits (then it exits as ENGINE did,
 * re-raising a fatal signal), or DUMP_AFTER_MS after a SIGTERM if ENGINE is still running then
 * (it goes on waiting for ENGINE, so the judge's SIGKILL ends both). The judge sends SIGTERM to
 * qctail alone; qctail passes it once to ENGINE or, with TERM_ALL 1, to every process it may
 * signal (kill -1): the sandboxes run it as the engine's uid in a pid namespace where nothing else
 * has that uid, so that is the engine's processes, forks included. Never as root (it refuses).
 *
 * UIDS "-" keeps the uid it was started with (bubblewrap's). UIDS "E:T" (started as root with
 * CAP_SETUID and CAP_SETGID: the Docker sandbox) runs ENGINE as uid and gid E and qctail itself
 * with effective uid E but real and saved uid T: it may signal the engine's processes (its
 * effective uid is their real one) and they may not signal it (neither of their uids is its real
 * or saved one), while the judge's meter, which counts processes by effective uid, counts its
 * reading as the engine's.
 *
 * It may run as pid 1 of the engine's pid namespace (bubblewrap's --as-pid-1): it then reaps
 * every orphan, and the engine cannot signal it (the kernel drops an init's unhandled signals
 * sent from inside its namespace, SIGKILL included).
 *
 * Why: an engine's output otherwise crossed, while it ran, the Docker daemon's attach stream and
 * the judge's reader, or under bubblewrap the judge's idle-priority reader, none of them the
 * engine's: a flooding engine went at their pace and, under Docker, its cost landed on the host
 * (counted as the host's interference). Here the copy is a pipe read by a process of the engine's
 * uid, in its cgroup, on its CPUs, in both sandboxes (judge/tail.py); the judge gets one tail at
 * the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TAIL (1 << 20)

static char ring[MAX_TAIL];
static size_t tail_bytes, head, filled;

static void keep(const char *buf, size_t n) {
    if (n >= tail_bytes) {
        memcpy(ring, buf + n - tail_bytes, tail_bytes);
        head = 0;
        filled = tail_bytes;
        return;
    }
    size_t first = tail_bytes - head < n ? tail_bytes - head : n;
    memcpy(ring + head, buf, first);
    memcpy(ring, buf + first, n - first);
    head = (head + n) % tail_bytes;
    filled = filled + n > tail_bytes ? tail_bytes : filled + n;
}

/* Read what the pipe holds now (a bounded number of reads, so signals are not starved by an
 * engine writing from several threads); 0 at end of file (every writer gone), 1 otherwise. */
static int drain(int fd) {
    static char buf[1 << 16];
    for (int reads = 0; reads < 16; reads++) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            keep(buf, (size_t)n);
            continue;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        return 1; /* EAGAIN: empty for now */
    }
    return 1;
}

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void dump(void) {
    size_t start = (head + tail_bytes - filled) % tail_bytes;
    size_t first = tail_bytes - start < filled ? tail_bytes - start : filled;
    write_all(ring + start, first);
    write_all(ring, filled - first);
}

static void nothing(int sig) { (void)sig; } /* a handler, so that an init is sent the signal */

/* "E:T" into its two uids; 0 for "-" (keep). */
static int parse_uids(const char *s, uid_t *engine, uid_t *tail) {
    if (strcmp(s, "-") == 0)
        return 0;
    unsigned long e, t;
    char extra;
    if (sscanf(s, "%lu:%lu%c", &e, &t, &extra) != 2 || e == 0 || t == 0 || e > 0xfffffffe || t > 0xfffffffe) {
        fprintf(stderr, "qctail: bad uids '%s'\n", s);
        exit(125);
    }
    *engine = (uid_t)e;
    *tail = (uid_t)t;
    return 1;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long parse(const char *s, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > max) {
        fprintf(stderr, "qctail: bad number '%s'\n", s);
        exit(125);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: qctail TAIL_BYTES DUMP_AFTER_MS TERM_ALL UIDS ENGINE [ARGS...]\n");
        return 125;
    }
    tail_bytes = (size_t)parse(argv[1], MAX_TAIL);
    long dump_after_ms = parse(argv[2], 3600000);
    int term_all = (int)parse(argv[3], 1);
    uid_t engine_uid = 0, tail_uid = 0;
    int switch_uids = parse_uids(argv[4], &engine_uid, &tail_uid);
    if (tail_bytes == 0)
        tail_bytes = 1;
    /* Same uid as the engine: not dumpable, so the engine cannot write to its stdout through
     * /proc/<pid>/fd or ptrace it. The engine's own exec resets this for itself. */
    prctl(PR_SET_DUMPABLE, 0);

    /* A judge gone before the dump must not turn the engine's exit status into SIGPIPE's. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, &old);
    struct sigaction handled = {.sa_handler = nothing};
    sigaction(SIGCHLD, &handled, NULL);
    sigaction(SIGTERM, &handled, NULL); /* blocked: read from the signalfd, never run */
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        perror("qctail: pipe");
        return 125;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("qctail: fork");
        return 125;
    }
    if (child == 0) {
        signal(SIGPIPE, SIG_DFL); /* an ignored signal stays ignored across exec (handlers do not) */
        sigprocmask(SIG_SETMASK, &old, NULL);
        dup2(out[1], STDOUT_FILENO);
        dup2(out[1], STDERR_FILENO);
        if (switch_uids && (setgroups(0, NULL) != 0 || setresgid(engine_uid, engine_uid, engine_uid) != 0 ||
                            setresuid(engine_uid, engine_uid, engine_uid) != 0)) {
            perror("qctail: engine uid");
            _exit(125);
        }
        execv(argv[5], argv + 5);
        fprintf(stderr, "qctail: cannot run %s: %s\n", argv[5], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    if (switch_uids && (setgroups(0, NULL) != 0 || setresgid(engine_uid, engine_uid, engine_uid) != 0 ||
                        setresuid(tail_uid, engine_uid, tail_uid) != 0)) {
        perror("qctail: own uids");
        kill(child, SIGKILL);
        return 125;
    }
    if (term_all && (geteuid() == 0 || getuid() == 0)) {
        fprintf(stderr, "qctail: TERM_ALL as root would signal every process of the host\n");
        kill(child, SIGKILL);
        return 125;
    }
    prctl(PR_SET_DUMPABLE, 0); /* a uid change made it dumpable again */
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        perror("qctail: signalfd");
        kill(child, SIGKILL);
        return 125;
    }

    int status = 0, dumped = 0, pipe_open = 1, engine_done = 0;
    int64_t dump_at = -1;
    for (;;) {
        struct pollfd fds[2] = {{sfd, POLLIN, 0}, {pipe_open ? out[0] : -1, POLLIN, 0}};
        int timeout = -1;
        if (dump_at >= 0 && !dumped) {
            int64_t left = dump_at - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int ready = poll(fds, 2, timeout);
        if (ready < 0 && errno != EINTR)
            break;
        if (pipe_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
            pipe_open = drain(out[0]);
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGTERM && dump_at < 0) {
                    kill(term_all ? -1 : child, SIGTERM);
                    dump_at = now_ms() + dump_after_ms;
                }
            }
            int st;
            for (pid_t p; (p = waitpid(-1, &st, WNOHANG)) > 0;) {
                if (p == child) {
                    status = st;
                    engine_done = 1;
                }
            }
            if (engine_done)
                break;
        }
        if (dump_at >= 0 && !dumped && now_ms() >= dump_at) {
            if (pipe_open)
                pipe_open = drain(out[0]);
            dump();
            dumped = 1;
        }
    }
    /* The engine is gone; what it (or a child still holding the pipe) wrote so far is the tail. */
    if (pipe_open)
        drain(out[0]);
    if (!dumped)
        dump();
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &mask, NULL);
        raise(sig);
        return 128 + sig; /* a signal whose default is not to end the process */
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}
