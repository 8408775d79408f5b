/* LD_PRELOAD shim for the lake's durability tests (tests/lake/test_durability.py).
 *
 * Writes (write, pwrite, writev, pwritev) to files under $DATADRIVE_FAULT_DIR
 * are counted across the process; from the $DATADRIVE_FAULT_AFTER-th on, each
 * fails with EIO, as a dying disk's would. Nothing else changes. Built with
 * gcc at test time; no device-mapper needed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long counter = 0;

static int faulty(int fd) {
    const char *dir = getenv("DATADRIVE_FAULT_DIR");
    const char *after = getenv("DATADRIVE_FAULT_AFTER");
    if (dir == NULL || after == NULL || fd < 0) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    if (strncmp(path, dir, strlen(dir)) != 0) return 0;
    long k = __sync_add_and_fetch(&counter, 1);
    return k >= atol(after);
}

#define REAL(name, ret, ...) \
    static ret (*real_##name)(__VA_ARGS__) = NULL; \
    if (real_##name == NULL) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write, ssize_t, int, const void *, size_t);
    if (faulty(fd)) { errno = EIO; return -1; }
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
    if (faulty(fd)) { errno = EIO; return -1; }
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
    if (faulty(fd)) { errno = EIO; return -1; }
    return real_pwrite64(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    if (faulty(fd)) { errno = EIO; return -1; }
    return real_writev(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t);
    if (faulty(fd)) { errno = EIO; return -1; }
    return real_pwritev(fd, iov, iovcnt, offset);
}

/* Power loss. With $DATADRIVE_SYNC_LOG set, every fsync/fdatasync of a file
 * under $DATADRIVE_FAULT_DIR appends "S <size> <path>" to that log, and
 * every rename or link of such a file "R <old>\t<new>" (the durable state of
 * <old> moves to <new>), and every unlink "U <path>" (a cut before it brings
 * the file back). After killing the process, the test drops what was
 * never made durable: new files never synced vanish, synced ones are cut
 * back to their synced size (tests/lake/test_durability.py). */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>

static void sync_log(const char *line) {
    const char *log = getenv("DATADRIVE_SYNC_LOG");
    if (log == NULL) return;
    REAL(write, ssize_t, int, const void *, size_t);
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return;
    real_write(fd, line, strlen(line));
    close(fd);
}

static int under_dir(const char *path) {
    const char *dir = getenv("DATADRIVE_FAULT_DIR");
    return dir != NULL && path != NULL && strncmp(path, dir, strlen(dir)) == 0;
}

static void log_sync(int fd) {
    char link[64], path[PATH_MAX], line[PATH_MAX + 64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = '\0';
    if (!under_dir(path)) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    snprintf(line, sizeof line, "S %lld %s\n", (long long)st.st_size, path);
    sync_log(line);
}

static void log_move(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    char a[PATH_MAX], b[PATH_MAX], line[2 * PATH_MAX + 8];
    char base[PATH_MAX];
    const char *paths[2] = {oldpath, newpath};
    int dirs[2] = {olddirfd, newdirfd};
    char *outs[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        if (paths[i][0] == '/' || dirs[i] == AT_FDCWD) {
            if (paths[i][0] == '/') snprintf(outs[i], PATH_MAX, "%s", paths[i]);
            else if (getcwd(base, sizeof base)) snprintf(outs[i], PATH_MAX, "%s/%s", base, paths[i]);
            else return;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirs[i]);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n <= 0) return;
            base[n] = '\0';
            snprintf(outs[i], PATH_MAX, "%s/%s", base, paths[i]);
        }
    }
    if (!under_dir(a) && !under_dir(b)) return;
    snprintf(line, sizeof line, "R %s\t%s\n", a, b);
    sync_log(line);
}

int fsync(int fd) {
    REAL(fsync, int, int);
    int r = real_fsync(fd);
    if (r == 0) log_sync(fd);
    return r;
}

int fdatasync(int fd) {
    REAL(fdatasync, int, int);
    int r = real_fdatasync(fd);
    if (r == 0) log_sync(fd);
    return r;
}

int rename(const char *oldpath, const char *newpath) {
    REAL(rename, int, const char *, const char *);
    int r = real_rename(oldpath, newpath);
    if (r == 0) log_move(AT_FDCWD, oldpath, AT_FDCWD, newpath);
    return r;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    REAL(renameat, int, int, const char *, int, const char *);
    int r = real_renameat(olddirfd, oldpath, newdirfd, newpath);
    if (r == 0) log_move(olddirfd, oldpath, newdirfd, newpath);
    return r;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    REAL(renameat2, int, int, const char *, int, const char *, unsigned int);
    int r = real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
    if (r == 0) log_move(olddirfd, oldpath, newdirfd, newpath);
    return r;
}

int link(const char *oldpath, const char *newpath) {
    REAL(link, int, const char *, const char *);
    int r = real_link(oldpath, newpath);
    if (r == 0) log_move(AT_FDCWD, oldpath, AT_FDCWD, newpath);
    return r;
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags) {
    REAL(linkat, int, int, const char *, int, const char *, int);
    int r = real_linkat(olddirfd, oldpath, newdirfd, newpath, flags);
    if (r == 0) log_move(olddirfd, oldpath, newdirfd, newpath);
    return r;
}

static void log_unlink(int dirfd, const char *path) {
    char base[PATH_MAX], full[PATH_MAX], line[PATH_MAX + 8];
    if (path[0] == '/') snprintf(full, sizeof full, "%s", path);
    else if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) return;
        snprintf(full, sizeof full, "%s/%s", base, path);
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        if (n <= 0) return;
        base[n] = '\0';
        snprintf(full, sizeof full, "%s/%s", base, path);
    }
    if (!under_dir(full)) return;
    snprintf(line, sizeof line, "U %s\n", full);
    sync_log(line);
}

int unlink(const char *path) {
    REAL(unlink, int, const char *);
    int r = real_unlink(path);
    if (r == 0) log_unlink(AT_FDCWD, path);
    return r;
}

int unlinkat(int dirfd, const char *path, int flags) {
    REAL(unlinkat, int, int, const char *, int);
    int r = real_unlinkat(dirfd, path, flags);
    if (r == 0 && !(flags & AT_REMOVEDIR)) log_unlink(dirfd, path);
    return r;
}
