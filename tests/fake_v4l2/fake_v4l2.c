/*
 * A user-space fake V4L2 camera, loaded with LD_PRELOAD into the process
 * under test (the stylecam daemon or CLI). It interposes open/openat/close/
 * mmap/poll/ioctl for the paths it is told are camera nodes and models the
 * kernel side of mmap streaming closely enough that the real ioctl path of
 * the program runs unmodified:
 *
 *  - the fd handed out is a timerfd (real poll readiness at the frame rate),
 *    the buffers live in a memfd (real mmap'able memory);
 *  - the buffer queue is the kernel's: QBUF of a queued buffer is EINVAL,
 *    DQBUF before STREAMON is EINVAL, poll before STREAMON is POLLERR,
 *    S_FMT/REQBUFS while buffers are allocated or streaming is EBUSY, a
 *    frame due with no queued buffer is dropped (the sequence skips);
 *  - after an unplug every call on an fd opened before it fails with ENODEV
 *    (poll says POLLERR|POLLHUP), and open fails with ENOENT until the node
 *    comes back `down_ms` later.
 *
 * Built by the tests with `cc -shared -fPIC`. Configuration: the file named
 * by FAKE_V4L2_CONFIG, one directive per line:
 *
 *   node PATH                         a camera node (a real, empty file)
 *   card TEXT / bus TEXT              what QUERYCAP says
 *   meta 1                            a metadata node (no video capture)
 *   format FOURCC W H FPS FILE...     frames to serve (raw YUYV/NV12 or JPEG)
 *   fault NAME VALUE                  unplug_after N (frames after each plug),
 *                                     down_ms N, cycles N (unplugs in all),
 *                                     eio_at N, error_at N, stall_at N,
 *                                     stall_ms N (frame numbers count from 1
 *                                     over the node's life), busy_opens N
 *                                     (the first N opens get EBUSY at S_FMT),
 *                                     drop_every N (the driver skips every
 *                                     Nth sequence number)
 *
 * FAKE_V4L2_LOG, if set, names a file the fake appends events to
 * ("unplug PATH", "replug PATH", "streamon PATH", ...).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES 8
#define MAX_FORMATS 8
#define MAX_FILES 16
#define MAX_FDS 4096
#define MAX_BUFS 32

struct blob { unsigned char *data; size_t len; };

struct format {
    uint32_t fourcc, width, height, fps;
    struct blob files[MAX_FILES];
    int nfiles;
};

struct node {
    char path[PATH_MAX];
    char card[32], bus[32];
    int meta;
    struct format formats[MAX_FORMATS];
    int nformats;
    /* faults */
    long unplug_after, down_ms, cycles, eio_at, error_at, stall_at, stall_ms, busy_opens, drop_every;
    /* state over the node's life */
    int unplugged;
    unsigned generation;
    long cycles_done, opens, total_frames, since_plug;
    struct timespec unplug_time, stall_until;
    int streaming_fds;
};

enum { BUF_USER = 0, BUF_QUEUED = 1, BUF_DONE = 2 };

struct fake_fd {
    int used;
    int node;
    unsigned generation;
    int fmt;               /* index into node->formats */
    int memfd;
    unsigned char *map;    /* the fake's own view of the buffers */
    size_t bufsize;
    int nbufs;
    int state[MAX_BUFS];
    int queue[MAX_BUFS], nqueue;   /* queued, in order */
    int done[MAX_BUFS], ndone;     /* filled, in order */
    uint32_t bytesused[MAX_BUFS], seqs[MAX_BUFS], flags[MAX_BUFS];
    struct timespec stamps[MAX_BUFS];
    int streaming;
    uint32_t sequence;
    /* STREAMON time, frame interval and timer expirations since: a
       frame is stamped with its expiration's nominal time, as a driver
       stamps at capture, not when the poller got round to it. */
    struct timespec stream_start;
    long interval_ns;
    uint64_t ticks;
    long file_index;
    int pending_eio;
};

static struct node nodes[MAX_NODES];
static int nnodes;
static struct fake_fd fds[MAX_FDS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off_t);
static int (*real_poll)(struct pollfd *, nfds_t, int);
static int (*real_ioctl)(int, unsigned long, ...);

static void logf_(const char *fmt, ...) {
    const char *path = getenv("FAKE_V4L2_LOG");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

static uint32_t fourcc_of(const char *s) {
    return (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
}

static int read_blob(const char *path, struct blob *b) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b->data = malloc(n > 0 ? n : 1);
    b->len = fread(b->data, 1, n, f);
    fclose(f);
    return 0;
}

static void load(void) {
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_close = dlsym(RTLD_NEXT, "close");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
    real_mmap64 = dlsym(RTLD_NEXT, "mmap64");
    real_poll = dlsym(RTLD_NEXT, "poll");
    real_ioctl = dlsym(RTLD_NEXT, "ioctl");
    const char *cfg = getenv("FAKE_V4L2_CONFIG");
    if (!cfg) return;
    FILE *f = fopen(cfg, "r");
    if (!f) { fprintf(stderr, "fake_v4l2: cannot read %s\n", cfg); return; }
    char line[8192];
    struct node *n = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *rest = strchr(line, ' ');
        if (!rest) continue;
        *rest++ = 0;
        if (!strcmp(line, "node") && nnodes < MAX_NODES) {
            n = &nodes[nnodes++];
            memset(n, 0, sizeof *n);
            if (!realpath(rest, n->path)) snprintf(n->path, sizeof n->path, "%s", rest);
            snprintf(n->card, sizeof n->card, "Fake Camera %d", nnodes);
            snprintf(n->bus, sizeof n->bus, "usb-fake-%d", nnodes);
        } else if (!n) {
            continue;
        } else if (!strcmp(line, "card")) {
            snprintf(n->card, sizeof n->card, "%s", rest);
        } else if (!strcmp(line, "bus")) {
            snprintf(n->bus, sizeof n->bus, "%s", rest);
        } else if (!strcmp(line, "meta")) {
            n->meta = atoi(rest);
        } else if (!strcmp(line, "format") && n->nformats < MAX_FORMATS) {
            struct format *fm = &n->formats[n->nformats++];
            memset(fm, 0, sizeof *fm);
            char *save = NULL;
            char *tok = strtok_r(rest, " ", &save);
            fm->fourcc = fourcc_of(tok);
            fm->width = atoi(strtok_r(NULL, " ", &save));
            fm->height = atoi(strtok_r(NULL, " ", &save));
            fm->fps = atoi(strtok_r(NULL, " ", &save));
            while ((tok = strtok_r(NULL, " ", &save)) && fm->nfiles < MAX_FILES) {
                if (read_blob(tok, &fm->files[fm->nfiles]) == 0) fm->nfiles++;
                else fprintf(stderr, "fake_v4l2: cannot read frame %s\n", tok);
            }
        } else if (!strcmp(line, "fault")) {
            char name[64];
            long v;
            if (sscanf(rest, "%63s %ld", name, &v) != 2) continue;
            if (!strcmp(name, "unplug_after")) n->unplug_after = v;
            else if (!strcmp(name, "down_ms")) n->down_ms = v;
            else if (!strcmp(name, "cycles")) n->cycles = v;
            else if (!strcmp(name, "eio_at")) n->eio_at = v;
            else if (!strcmp(name, "error_at")) n->error_at = v;
            else if (!strcmp(name, "stall_at")) n->stall_at = v;
            else if (!strcmp(name, "stall_ms")) n->stall_ms = v;
            else if (!strcmp(name, "busy_opens")) n->busy_opens = v;
            else if (!strcmp(name, "drop_every")) n->drop_every = v;
        }
    }
    fclose(f);
}

static void init(void) { pthread_once(&once, load); }

static struct timespec now_mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static long ms_between(struct timespec a, struct timespec b) {
    return (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

static struct timespec plus_ms(struct timespec t, long ms) {
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) { t.tv_sec++; t.tv_nsec -= 1000000000; }
    return t;
}

/* Brings an unplugged node back once its down time has passed. */
static void maybe_replug(struct node *n) {
    if (n->unplugged && ms_between(n->unplug_time, now_mono()) >= n->down_ms) {
        n->unplugged = 0;
        n->since_plug = 0;
        logf_("replug %s", n->path);
    }
}

static int find_node(const char *path) {
    char real[PATH_MAX];
    for (int pass = 0; pass < 2; pass++) {
        const char *p = path;
        if (pass == 1) {
            if (!realpath(path, real)) return -1;
            p = real;
        }
        for (int i = 0; i < nnodes; i++)
            if (!strcmp(nodes[i].path, p)) return i;
    }
    return -1;
}

static struct fake_fd *fake(int fd) {
    if (fd < 0 || fd >= MAX_FDS || !fds[fd].used) return NULL;
    return &fds[fd];
}

static int dead(struct fake_fd *f) {
    struct node *n = &nodes[f->node];
    return n->unplugged || n->generation != f->generation;
}

static int open_node(int idx) {
    struct node *n = &nodes[idx];
    maybe_replug(n);
    if (n->unplugged) { errno = ENOENT; return -1; }
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return -1;
    if (fd >= MAX_FDS) { real_close(fd); errno = EMFILE; return -1; }
    struct fake_fd *f = &fds[fd];
    memset(f, 0, sizeof *f);
    f->used = 1;
    f->node = idx;
    f->generation = n->generation;
    f->memfd = -1;
    n->opens++;
    logf_("open %s", n->path);
    return fd;
}

static int try_open(const char *path, int *out) {
    init();
    if (!path || nnodes == 0) return 0;
    pthread_mutex_lock(&lock);
    int idx = find_node(path);
    if (idx >= 0) *out = open_node(idx);
    pthread_mutex_unlock(&lock);
    return idx >= 0;
}

#define OPEN_BODY(call)                                    \
    mode_t mode = 0;                                       \
    if (flags & (O_CREAT | O_TMPFILE)) {                   \
        va_list ap;                                        \
        va_start(ap, flags);                               \
        mode = va_arg(ap, mode_t);                         \
        va_end(ap);                                        \
    }                                                      \
    int fd;                                                \
    if (try_open(path, &fd)) return fd;                    \
    return call;

int open(const char *path, int flags, ...) { OPEN_BODY(real_open(path, flags, mode)) }
int open64(const char *path, int flags, ...) { OPEN_BODY(real_open64(path, flags, mode)) }
int openat(int dirfd, const char *path, int flags, ...) { OPEN_BODY(real_openat(dirfd, path, flags, mode)) }
int openat64(int dirfd, const char *path, int flags, ...) { OPEN_BODY(real_openat64(dirfd, path, flags, mode)) }

static void free_buffers(struct fake_fd *f) {
    if (f->map) munmap(f->map, f->bufsize * f->nbufs);
    if (f->memfd >= 0) real_close(f->memfd);
    f->map = NULL;
    f->memfd = -1;
    f->nbufs = 0;
    f->nqueue = f->ndone = 0;
}

static void stop_streaming(struct fake_fd *f) {
    if (!f->streaming) return;
    struct itimerspec off = {0};
    timerfd_settime((int)(f - fds), 0, &off, NULL);
    f->streaming = 0;
    nodes[f->node].streaming_fds--;
    for (int i = 0; i < f->nbufs; i++) f->state[i] = BUF_USER;
    f->nqueue = f->ndone = 0;
}

int close(int fd) {
    init();
    pthread_mutex_lock(&lock);
    struct fake_fd *f = fake(fd);
    if (f) {
        stop_streaming(f);
        free_buffers(f);
        f->used = 0;
        logf_("close %s", nodes[f->node].path);
    }
    pthread_mutex_unlock(&lock);
    return real_close(fd);
}

static void *map_common(void *addr, size_t len, int prot, int flags, int fd, off_t off,
                        void *(*real)(void *, size_t, int, int, int, off_t)) {
    init();
    pthread_mutex_lock(&lock);
    struct fake_fd *f = fake(fd);
    if (!f) {
        pthread_mutex_unlock(&lock);
        return real(addr, len, prot, flags, fd, off);
    }
    void *r;
    if (dead(f)) { errno = ENODEV; r = MAP_FAILED; }
    else if (f->memfd < 0 || (size_t)off + len > f->bufsize * f->nbufs) { errno = EINVAL; r = MAP_FAILED; }
    else r = real(addr, len, prot, flags, f->memfd, off);
    pthread_mutex_unlock(&lock);
    return r;
}

void *mmap(void *a, size_t l, int p, int fl, int fd, off_t o) { return map_common(a, l, p, fl, fd, o, real_mmap); }
void *mmap64(void *a, size_t l, int p, int fl, int fd, off_t o) { return map_common(a, l, p, fl, fd, o, real_mmap64); }

static size_t image_size(const struct format *fm) {
    switch (fm->fourcc) {
    case V4L2_PIX_FMT_YUYV: return (size_t)fm->width * fm->height * 2;
    case V4L2_PIX_FMT_NV12: return (size_t)fm->width * fm->height * 3 / 2;
    default: {
        size_t m = 0;
        for (int i = 0; i < fm->nfiles; i++) if (fm->files[i].len > m) m = fm->files[i].len;
        return m;
    }
    }
}

/* One frame interval passed on a streaming fd. */
static void tick(struct fake_fd *f) {
    struct node *n = &nodes[f->node];
    struct timespec now = now_mono();
    uint64_t due_ns = (uint64_t)f->stream_start.tv_nsec + ++f->ticks * (uint64_t)f->interval_ns;
    struct timespec due = {f->stream_start.tv_sec + (time_t)(due_ns / 1000000000ULL),
                           (long)(due_ns % 1000000000ULL)};
    if (n->stall_until.tv_sec && ms_between(now, n->stall_until) > 0) return;
    n->total_frames++;
    if (n->stall_at && n->total_frames == n->stall_at) {
        n->stall_until = plus_ms(now, n->stall_ms);
        logf_("stall %s", n->path);
        return;
    }
    if (n->unplug_after && n->since_plug >= n->unplug_after &&
        (n->cycles == 0 || n->cycles_done < n->cycles)) {
        n->unplugged = 1;
        n->generation++;
        n->cycles_done++;
        n->unplug_time = now;
        logf_("unplug %s %ld", n->path, n->cycles_done);
        return;
    }
    n->since_plug++;
    uint32_t seq = f->sequence++;
    if (n->drop_every && seq > 0 && seq % n->drop_every == 0) return;
    if (n->eio_at && n->total_frames == n->eio_at) { f->pending_eio = 1; logf_("eio %s", n->path); }
    if (f->nqueue == 0) return; /* no buffer: the frame is dropped */
    int b = f->queue[0];
    memmove(f->queue, f->queue + 1, (--f->nqueue) * sizeof(int));
    const struct format *fm = &n->formats[f->fmt];
    const struct blob *src = &fm->files[f->file_index++ % fm->nfiles];
    size_t len = src->len < f->bufsize ? src->len : f->bufsize;
    memcpy(f->map + (size_t)b * f->bufsize, src->data, len);
    f->bytesused[b] = (uint32_t)len;
    f->seqs[b] = seq;
    f->stamps[b] = due;
    f->flags[b] = (n->error_at && n->total_frames == n->error_at) ? V4L2_BUF_FLAG_ERROR : 0;
    f->state[b] = BUF_DONE;
    f->done[f->ndone++] = b;
}

/* Reads the timer and turns its expirations into frames. */
static void drain_timer(struct fake_fd *f) {
    uint64_t expirations = 0;
    if (read((int)(f - fds), &expirations, sizeof expirations) != sizeof expirations) return;
    for (uint64_t i = 0; i < expirations && i < 100 && f->streaming && !dead(f); i++) tick(f);
}

/* 0 = wait on the timer, else the revents to report now. */
static short readiness(struct fake_fd *f) {
    maybe_replug(&nodes[f->node]);
    if (dead(f)) return POLLERR | POLLHUP;
    if (!f->streaming) return POLLERR;
    if (f->ndone > 0 || f->pending_eio) return POLLIN | POLLRDNORM;
    return 0;
}

int poll(struct pollfd *pfds, nfds_t n, int timeout) {
    init();
    int any = 0;
    pthread_mutex_lock(&lock);
    for (nfds_t i = 0; i < n; i++) if (fake(pfds[i].fd)) any = 1;
    pthread_mutex_unlock(&lock);
    if (!any) return real_poll(pfds, n, timeout);

    struct timespec deadline = plus_ms(now_mono(), timeout < 0 ? 1000L * 3600 * 24 : timeout);
    struct pollfd *copy = calloc(n, sizeof *copy);
    int ready;
    for (;;) {
        ready = 0;
        pthread_mutex_lock(&lock);
        for (nfds_t i = 0; i < n; i++) {
            copy[i] = pfds[i];
            pfds[i].revents = 0;
            struct fake_fd *f = fake(pfds[i].fd);
            if (!f) continue;
            short r = readiness(f);
            if (r) { pfds[i].revents = r & (pfds[i].events | POLLERR | POLLHUP); copy[i].fd = -1; ready++; }
            else copy[i].events = POLLIN;
        }
        pthread_mutex_unlock(&lock);
        long left = ms_between(now_mono(), deadline);
        int wait = ready ? 0 : (left < 0 ? 0 : (left > 50 ? 50 : (int)left));
        int r = real_poll(copy, n, wait);
        if (r < 0) { free(copy); return r; }
        pthread_mutex_lock(&lock);
        for (nfds_t i = 0; i < n; i++) {
            struct fake_fd *f = fake(pfds[i].fd);
            if (f) {
                if (copy[i].fd >= 0 && (copy[i].revents & POLLIN)) drain_timer(f);
                if (copy[i].fd >= 0) {
                    short rr = readiness(f);
                    if (rr) { pfds[i].revents = rr & (pfds[i].events | POLLERR | POLLHUP); ready++; }
                }
            } else if (copy[i].revents) {
                pfds[i].revents = copy[i].revents;
                ready++;
            }
        }
        pthread_mutex_unlock(&lock);
        if (ready || ms_between(now_mono(), deadline) <= 0) break;
    }
    free(copy);
    return ready;
}

static int pick_format(struct node *n, uint32_t fourcc, uint32_t w, uint32_t h) {
    int best = -1;
    long best_d = 0;
    for (int pass = 0; pass < 2 && best < 0; pass++)
        for (int i = 0; i < n->nformats; i++) {
            if (pass == 0 && n->formats[i].fourcc != fourcc) continue;
            long d = labs((long)n->formats[i].width - w) + labs((long)n->formats[i].height - h);
            if (best < 0 || d < best_d) { best = i; best_d = d; }
        }
    return best;
}

static void fill_pix(const struct format *fm, struct v4l2_pix_format *pix) {
    memset(pix, 0, sizeof *pix);
    pix->width = fm->width;
    pix->height = fm->height;
    pix->pixelformat = fm->fourcc;
    pix->field = V4L2_FIELD_NONE;
    pix->bytesperline = fm->fourcc == V4L2_PIX_FMT_YUYV ? fm->width * 2
                        : fm->fourcc == V4L2_PIX_FMT_NV12 ? fm->width : 0;
    pix->sizeimage = (uint32_t)image_size(fm);
    pix->colorspace = V4L2_COLORSPACE_SRGB;
}

static const char *describe(uint32_t fourcc) {
    switch (fourcc) {
    case V4L2_PIX_FMT_YUYV: return "YUYV 4:2:2";
    case V4L2_PIX_FMT_NV12: return "Y/UV 4:2:0";
    case V4L2_PIX_FMT_MJPEG: return "Motion-JPEG";
    default: return "other";
    }
}

static int do_ioctl(struct fake_fd *f, unsigned long req, void *arg) {
    struct node *n = &nodes[f->node];
    maybe_replug(n);
    if (dead(f)) return -ENODEV;
    switch (req) {
    case VIDIOC_QUERYCAP: {
        struct v4l2_capability *c = arg;
        memset(c, 0, sizeof *c);
        snprintf((char *)c->driver, sizeof c->driver, "fakecam");
        snprintf((char *)c->card, sizeof c->card, "%s", n->card);
        snprintf((char *)c->bus_info, sizeof c->bus_info, "%s", n->bus);
        c->version = 0x060100;
        c->device_caps = n->meta ? V4L2_CAP_META_CAPTURE | V4L2_CAP_STREAMING
                                 : V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
        c->capabilities = c->device_caps | V4L2_CAP_DEVICE_CAPS;
        return 0;
    }
    case VIDIOC_ENUM_FMT: {
        struct v4l2_fmtdesc *d = arg;
        if (d->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || n->meta) return -EINVAL;
        uint32_t seen[MAX_FORMATS];
        unsigned nseen = 0;
        for (int i = 0; i < n->nformats; i++) {
            int dup = 0;
            for (unsigned j = 0; j < nseen; j++) if (seen[j] == n->formats[i].fourcc) dup = 1;
            if (dup) continue;
            if (nseen == d->index) {
                uint32_t idx = d->index, type = d->type;
                memset(d, 0, sizeof *d);
                d->index = idx;
                d->type = type;
                d->pixelformat = n->formats[i].fourcc;
                d->flags = n->formats[i].fourcc == V4L2_PIX_FMT_MJPEG ? V4L2_FMT_FLAG_COMPRESSED : 0;
                snprintf((char *)d->description, sizeof d->description, "%s", describe(d->pixelformat));
                return 0;
            }
            seen[nseen++] = n->formats[i].fourcc;
        }
        return -EINVAL;
    }
    case VIDIOC_ENUM_FRAMESIZES: {
        struct v4l2_frmsizeenum *s = arg;
        uint32_t k = 0;
        for (int i = 0; i < n->nformats; i++) {
            if (n->formats[i].fourcc != s->pixel_format) continue;
            if (k++ == s->index) {
                s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
                s->discrete.width = n->formats[i].width;
                s->discrete.height = n->formats[i].height;
                return 0;
            }
        }
        return -EINVAL;
    }
    case VIDIOC_ENUM_FRAMEINTERVALS: {
        struct v4l2_frmivalenum *r = arg;
        for (int i = 0; i < n->nformats; i++) {
            struct format *fm = &n->formats[i];
            if (fm->fourcc != r->pixel_format || fm->width != r->width || fm->height != r->height) continue;
            /* the format's rate, then half of it */
            if (r->index > 1) return -EINVAL;
            r->type = V4L2_FRMIVAL_TYPE_DISCRETE;
            r->discrete.numerator = r->index == 0 ? 1 : 2;
            r->discrete.denominator = fm->fps;
            return 0;
        }
        return -EINVAL;
    }
    case VIDIOC_G_FMT: {
        struct v4l2_format *fmt = arg;
        if (fmt->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
        fill_pix(&n->formats[f->fmt], &fmt->fmt.pix);
        return 0;
    }
    case VIDIOC_S_FMT:
    case VIDIOC_TRY_FMT: {
        struct v4l2_format *fmt = arg;
        if (fmt->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || n->nformats == 0) return -EINVAL;
        if (req == VIDIOC_S_FMT) {
            if (n->busy_opens && n->opens <= n->busy_opens) return -EBUSY;
            if (f->nbufs > 0 || n->streaming_fds > 0) return -EBUSY;
        }
        int i = pick_format(n, fmt->fmt.pix.pixelformat, fmt->fmt.pix.width, fmt->fmt.pix.height);
        if (req == VIDIOC_S_FMT) f->fmt = i;
        fill_pix(&n->formats[i], &fmt->fmt.pix);
        return 0;
    }
    case VIDIOC_G_PARM:
    case VIDIOC_S_PARM: {
        struct v4l2_streamparm *p = arg;
        if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
        memset(&p->parm.capture, 0, sizeof p->parm.capture);
        p->parm.capture.capability = V4L2_CAP_TIMEPERFRAME;
        p->parm.capture.timeperframe.numerator = 1;
        p->parm.capture.timeperframe.denominator = n->formats[f->fmt].fps;
        return 0;
    }
    case VIDIOC_REQBUFS: {
        struct v4l2_requestbuffers *r = arg;
        if (r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || r->memory != V4L2_MEMORY_MMAP) return -EINVAL;
        if (f->streaming) return -EBUSY;
        free_buffers(f);
        if (r->count == 0) return 0;
        uint32_t count = r->count < 2 ? 2 : r->count > MAX_BUFS ? MAX_BUFS : r->count;
        long page = sysconf(_SC_PAGESIZE);
        size_t size = image_size(&n->formats[f->fmt]);
        size = (size + page - 1) / page * page;
        f->memfd = memfd_create("fake-v4l2", MFD_CLOEXEC);
        if (f->memfd < 0 || ftruncate(f->memfd, size * count) < 0) return -ENOMEM;
        f->map = real_mmap(NULL, size * count, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
        if (f->map == MAP_FAILED) { f->map = NULL; return -ENOMEM; }
        f->bufsize = size;
        f->nbufs = (int)count;
        for (int i = 0; i < f->nbufs; i++) f->state[i] = BUF_USER;
        r->count = count;
        r->capabilities = V4L2_BUF_CAP_SUPPORTS_MMAP;
        return 0;
    }
    case VIDIOC_QUERYBUF:
    case VIDIOC_QBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || b->index >= (uint32_t)f->nbufs) return -EINVAL;
        if (req == VIDIOC_QBUF) {
            if (b->memory != V4L2_MEMORY_MMAP || f->state[b->index] != BUF_USER) return -EINVAL;
            f->state[b->index] = BUF_QUEUED;
            f->queue[f->nqueue++] = (int)b->index;
        }
        b->memory = V4L2_MEMORY_MMAP;
        b->length = (uint32_t)f->bufsize;
        b->m.offset = (uint32_t)(b->index * f->bufsize);
        b->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC |
                   (f->state[b->index] == BUF_QUEUED ? V4L2_BUF_FLAG_QUEUED : 0) |
                   (f->state[b->index] == BUF_DONE ? V4L2_BUF_FLAG_DONE : 0);
        return 0;
    }
    case VIDIOC_DQBUF: {
        struct v4l2_buffer *b = arg;
        if (b->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || !f->streaming) return -EINVAL;
        if (f->pending_eio) { f->pending_eio = 0; return -EIO; }
        if (f->ndone == 0) return -EAGAIN;
        int i = f->done[0];
        memmove(f->done, f->done + 1, (--f->ndone) * sizeof(int));
        f->state[i] = BUF_USER;
        b->index = (uint32_t)i;
        b->memory = V4L2_MEMORY_MMAP;
        b->bytesused = f->bytesused[i];
        b->length = (uint32_t)f->bufsize;
        b->m.offset = (uint32_t)(i * f->bufsize);
        b->field = V4L2_FIELD_NONE;
        b->sequence = f->seqs[i];
        b->timestamp.tv_sec = f->stamps[i].tv_sec;
        b->timestamp.tv_usec = f->stamps[i].tv_nsec / 1000;
        b->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC | f->flags[i];
        return 0;
    }
    case VIDIOC_STREAMON: {
        if (*(int *)arg != V4L2_BUF_TYPE_VIDEO_CAPTURE || f->nbufs == 0) return -EINVAL;
        if (f->streaming) return 0;
        uint32_t fps = n->formats[f->fmt].fps ? n->formats[f->fmt].fps : 30;
        struct itimerspec t = {0};
        t.it_interval.tv_nsec = 1000000000L / fps;
        t.it_value = t.it_interval;
        timerfd_settime((int)(f - fds), 0, &t, NULL);
        f->stream_start = now_mono();
        f->interval_ns = t.it_interval.tv_nsec;
        f->ticks = 0;
        f->streaming = 1;
        f->sequence = 0;
        n->streaming_fds++;
        logf_("streamon %s", n->path);
        return 0;
    }
    case VIDIOC_STREAMOFF:
        if (*(int *)arg != V4L2_BUF_TYPE_VIDEO_CAPTURE) return -EINVAL;
        stop_streaming(f);
        return 0;
    default:
        return -ENOTTY;
    }
}

int ioctl(int fd, unsigned long req, ...) {
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    init();
    pthread_mutex_lock(&lock);
    struct fake_fd *f = fake(fd);
    if (!f) {
        pthread_mutex_unlock(&lock);
        return real_ioctl(fd, req, arg);
    }
    int r = do_ioctl(f, req, arg);
    /* Every call on an fd from before an unplug fails, STREAMOFF included. */
    pthread_mutex_unlock(&lock);
    if (r < 0) { errno = -r; return -1; }
    return r;
}
