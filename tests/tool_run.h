/* tests/tool_run.h — runs a built program the way a user would, for the CLI tests: argv[0] is the
 * binary, stdout and stderr go to files in dir (stdout.txt, stderr.txt) and are read back into
 * out and err (NUL-terminated, truncated to their size). Returns the exit status, or 128 + the
 * signal number when the program was killed. Header-only (static), like test_util.h. */
#ifndef SLA_TOOL_RUN_H
#define SLA_TOOL_RUN_H

#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void tool_read_file(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

static inline int tool_run(const char *const *argv, const char *dir, char *out, size_t outlen, char *err,
                           size_t errlen) {
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", dir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1), dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    tool_read_file(out_path, out, outlen);
    tool_read_file(err_path, err, errlen);
    unlink(out_path), unlink(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

#endif
