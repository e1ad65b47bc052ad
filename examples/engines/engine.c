/*
 * QuantCraft example contestant engine (protocol version 1.1, docs/protocol.md).
 *
 * One file, C11 + glibc only, single-threaded, non-blocking sockets + epoll
 * (-DVARIANT_THREADED: the same engine with an I/O thread and a matching thread).
 *   ./engine --port PORT        (else env QC_PORT, else 8080), listens on 127.0.0.1
 *   GET /health                 200 {"status": "ok"}
 *   GET /orderbook?symbol=S     200 {"symbol": S, "bids": [[price, qty], ...], "asks": [...]}
 *   GET /ws/orders              WebSocket (RFC 6455), one JSON order per text frame,
 *                               one JSON report per order, in arrival order.
 *
 * Matching: price-time priority, one independent book per symbol (section 4).
 * Prices are fixed-point int64 ticks = round(price * 10000), parsed from the
 * decimal text directly (no floating point anywhere).
 *
 * The same source builds deliberately broken / hostile engines for the judge's
 * tests: compile with -DVARIANT_<NAME> (see the "variants" section below and
 * README.md).  Without any VARIANT_ macro this is the correct engine.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ======================================================================= */
/* Variants: exactly one VARIANT_<NAME> macro (or none for the correct one). */
/* Code tests `VARIANT == V_xxx`, a compile-time constant, so the dead       */
/* branches vanish and every build is warning-free.                          */
/* ======================================================================= */
enum {
    V_CORRECT, V_LIFO_PRIORITY, V_NEVER_CANCEL, V_MARKET_RESTS, V_FORK_BOMB,
    V_MEMORY_BOMB, V_TMP_FILL, V_CANARY_CONNECT, V_CANARY_FILE, V_KILL_OTHERS,
    V_NEVER_HEALTHY, V_CRASH_MID_PHASE, V_HANG_MID_PHASE, V_STDERR_FLOOD,
    V_BIG_FRAME, V_INVALID_JSON, V_UNKNOWN_ORDERS, V_DAEMONIZE, V_WRITE_APP,
    V_WRITE_ROOT, V_SLOW, V_TRIVIAL, V_ANSWER_TABLE, V_THREADED
};
#if defined(VARIANT_LIFO_PRIORITY)
#  define VARIANT V_LIFO_PRIORITY
#  define VARIANT_NAME "lifo_priority"
#elif defined(VARIANT_NEVER_CANCEL)
#  define VARIANT V_NEVER_CANCEL
#  define VARIANT_NAME "never_cancel"
#elif defined(VARIANT_MARKET_RESTS)
#  define VARIANT V_MARKET_RESTS
#  define VARIANT_NAME "market_rests"
#elif defined(VARIANT_FORK_BOMB)
#  define VARIANT V_FORK_BOMB
#  define VARIANT_NAME "fork_bomb"
#elif defined(VARIANT_MEMORY_BOMB)
#  define VARIANT V_MEMORY_BOMB
#  define VARIANT_NAME "memory_bomb"
#elif defined(VARIANT_TMP_FILL)
#  define VARIANT V_TMP_FILL
#  define VARIANT_NAME "tmp_fill"
#elif defined(VARIANT_CANARY_CONNECT)
#  define VARIANT V_CANARY_CONNECT
#  define VARIANT_NAME "canary_connect"
#elif defined(VARIANT_CANARY_FILE)
#  define VARIANT V_CANARY_FILE
#  define VARIANT_NAME "canary_file"
#elif defined(VARIANT_KILL_OTHERS)
#  define VARIANT V_KILL_OTHERS
#  define VARIANT_NAME "kill_others"
#elif defined(VARIANT_NEVER_HEALTHY)
#  define VARIANT V_NEVER_HEALTHY
#  define VARIANT_NAME "never_healthy"
#elif defined(VARIANT_CRASH_MID_PHASE)
#  define VARIANT V_CRASH_MID_PHASE
#  define VARIANT_NAME "crash_mid_phase"
#elif defined(VARIANT_HANG_MID_PHASE)
#  define VARIANT V_HANG_MID_PHASE
#  define VARIANT_NAME "hang_mid_phase"
#elif defined(VARIANT_STDERR_FLOOD)
#  define VARIANT V_STDERR_FLOOD
#  define VARIANT_NAME "stderr_flood"
#elif defined(VARIANT_BIG_FRAME)
#  define VARIANT V_BIG_FRAME
#  define VARIANT_NAME "big_frame"
#elif defined(VARIANT_INVALID_JSON)
#  define VARIANT V_INVALID_JSON
#  define VARIANT_NAME "invalid_json"
#elif defined(VARIANT_UNKNOWN_ORDERS)
#  define VARIANT V_UNKNOWN_ORDERS
#  define VARIANT_NAME "unknown_orders"
#elif defined(VARIANT_DAEMONIZE)
#  define VARIANT V_DAEMONIZE
#  define VARIANT_NAME "daemonize"
#elif defined(VARIANT_WRITE_APP)
#  define VARIANT V_WRITE_APP
#  define VARIANT_NAME "write_app"
#elif defined(VARIANT_WRITE_ROOT)
#  define VARIANT V_WRITE_ROOT
#  define VARIANT_NAME "write_root"
#elif defined(VARIANT_SLOW)
#  define VARIANT V_SLOW
#  define VARIANT_NAME "slow"
#elif defined(VARIANT_TRIVIAL)
#  define VARIANT V_TRIVIAL
#  define VARIANT_NAME "trivial"
#elif defined(VARIANT_THREADED)
/* Correct, with two threads: the epoll thread does all socket I/O, HTTP, WebSocket framing
 * and order parsing; a matching thread owns the books (see "Threaded variant" below). */
#  define VARIANT V_THREADED
#  define VARIANT_NAME "threaded"
#elif defined(VARIANT_ANSWER_TABLE)
/* A cheat: replies with a table of published reports (ANSWERS_H defines ANSWERS[][2] = {order id,
 * report JSON} sorted by id, and N_ANSWERS) instead of its own matching; official traces defeat it.
 * Built by tests/judge/test_official_traces.py from the public expected reports. */
#  define VARIANT V_ANSWER_TABLE
#  define VARIANT_NAME "answer_table"
#  include ANSWERS_H
#else
#  define VARIANT V_CORRECT
#  define VARIANT_NAME "correct"
#endif

/* Knobs of the hostile variants (override with -D...). */
#ifndef CANARY_PORT
#define CANARY_PORT 47001
#endif
#ifndef CANARY_PATH
#define CANARY_PATH "/tmp/qc-canary"
#endif
#ifndef VICTIM_PID
#define VICTIM_PID 1
#endif
/* The resolution twins: BUSY_US microseconds of the thread's own CPU time spent on every order
 * before its report, as matching work would (bench/resolution_bench.py). 0: none. */
#ifndef BUSY_US
#define BUSY_US 0
#endif
#ifndef TMP_FILL_PATH
#define TMP_FILL_PATH "/tmp/fill"
#endif
#ifndef TMP_FILL_LIMIT             /* safety cap if /tmp turns out unbounded */
#define TMP_FILL_LIMIT (1ULL << 30)
#endif
#ifndef FORK_BOMB_LIMIT            /* forks per bomb process; 0 = forever (tests only) */
#define FORK_BOMB_LIMIT 0
#endif
#ifndef MID_PHASE_ORDERS           /* crash_mid_phase / hang_mid_phase trigger */
#define MID_PHASE_ORDERS 200
#endif

/* ======================================================================= */
/* Limits                                                                   */
/* ======================================================================= */
#define MAX_ID          32          /* order_id length (protocol)            */
#define MAX_SYMBOL      32          /* symbol length we accept               */
#define ID_BUF          128         /* longer ids are echoed up to this size */
#define MAX_QTY         1000000000000000LL   /* 1e15, keeps level sums safe  */
#define READ_CHUNK      (256 * 1024)
#define MAX_FRAME       (16u << 20)  /* incoming payload limit               */
#define MAX_HTTP_HEADER (16 * 1024)
#define OUT_HIGH_WATER  (16u << 20)  /* stop reading while this much unsent  */
#ifndef MAX_INFLIGHT     /* threaded: stop reading while this many orders are unanswered */
#define MAX_INFLIGHT    65536
#endif
#define NIL             UINT32_MAX
#ifndef SPIN_US          /* busy-poll this long after activity; 0 = always block */
#define SPIN_US         200
#endif

/* ======================================================================= */
/* Small growable byte buffer and formatting helpers                        */
/* ======================================================================= */
typedef struct { char *p; size_t len, cap; } buf_t;

static void buf_grow(buf_t *b, size_t need) {
    size_t nc = b->cap ? b->cap : 1024;
    while (nc < need) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) { fprintf(stderr, "engine: out of memory\n"); abort(); }
    b->p = np;
    b->cap = nc;
}
static inline char *buf_room(buf_t *b, size_t n) {
    if (b->len + n > b->cap) buf_grow(b, b->len + n);
    return b->p + b->len;
}
static inline void buf_put(buf_t *b, const void *s, size_t n) {
    memcpy(buf_room(b, n), s, n);
    b->len += n;
}
#define BUF_LIT(b, s) buf_put((b), (s), sizeof(s) - 1)

static inline void buf_u64(buf_t *b, uint64_t v) {
    char t[24];
    int i = 24;
    do { t[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    buf_put(b, t + i, (size_t)(24 - i));
}
/* ticks (1/10000) -> shortest decimal: 100.25, 100.2, 100, 99.0001 */
static void buf_price(buf_t *b, int64_t ticks) {
    if (ticks < 0) { buf_put(b, "-", 1); ticks = -ticks; }
    buf_u64(b, (uint64_t)ticks / 10000);
    unsigned f = (unsigned)((uint64_t)ticks % 10000);
    if (f) {
        char t[5] = { '.', (char)('0' + f / 1000), (char)('0' + f / 100 % 10),
                      (char)('0' + f / 10 % 10), (char)('0' + f % 10) };
        size_t n = 5;
        while (t[n - 1] == '0') n--;
        buf_put(b, t, n);
    }
}
/* JSON string contents (no quotes), escaping what must be escaped. */
static void buf_jstr(buf_t *b, const char *s, size_t n) {
    size_t i, run = 0;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        buf_put(b, s + run, i - run);
        run = i + 1;
        if (ch == '"') BUF_LIT(b, "\\\"");
        else if (ch == '\\') BUF_LIT(b, "\\\\");
        else {
            char e[7];
            snprintf(e, sizeof e, "\\u%04x", ch);
            buf_put(b, e, 6);
        }
    }
    buf_put(b, s + run, n - run);
}

static uint64_t hash64(const char *s, size_t n) {   /* FNV-1a + final mix */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ULL; }
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33;
    return h;
}

/* ======================================================================= */
/* Order book                                                               */
/* ======================================================================= */
enum { BUY = 0, SELL = 1 };

typedef struct {                 /* one resting order                          */
    int64_t price, qty;          /* ticks, remaining quantity                  */
    uint32_t prev, next;         /* FIFO within its level (next: free list)    */
    uint32_t book, hash;
    uint8_t side, idlen, in_map;
    char id[MAX_ID + 1];
} order_t;

typedef struct { int64_t key, total; uint32_t head, tail; } level_t;
/* Levels sorted by ascending key, best level LAST (cheap pops/inserts near
 * the top of book): key = price for bids, -price for asks.                  */
typedef struct { level_t *lv; uint32_t n, cap; } side_t;

typedef struct {
    uint64_t hash;
    uint32_t len;
    char name[MAX_SYMBOL + 1];
    side_t side[2];              /* side[BUY] = bids, side[SELL] = asks        */
} book_t;

static order_t *g_ord;
static uint32_t g_ord_n, g_ord_cap, g_ord_free = NIL;
static book_t *g_books;
static uint32_t g_nbooks, g_books_cap, g_last_book;

/* order_id -> order index, open addressing, linear probing, backward-shift
 * deletion.  Holds exactly the resting orders.                              */
typedef struct { uint32_t hash, idx; } slot_t;
static slot_t *g_map;
static uint32_t g_map_mask, g_map_cnt;

static void map_alloc(uint32_t cap) {
    g_map = malloc(sizeof(slot_t) * cap);
    if (!g_map) { fprintf(stderr, "engine: out of memory\n"); abort(); }
    for (uint32_t i = 0; i < cap; i++) g_map[i].idx = NIL;
    g_map_mask = cap - 1;
}
static void map_put_raw(uint32_t hash, uint32_t idx) {
    uint32_t i = hash & g_map_mask;
    while (g_map[i].idx != NIL) i = (i + 1) & g_map_mask;
    g_map[i].hash = hash;
    g_map[i].idx = idx;
}
static void map_insert(uint32_t oi) {
    if ((g_map_cnt + 1) * 2 > g_map_mask + 1) {
        slot_t *old = g_map;
        uint32_t oldcap = g_map_mask + 1;
        map_alloc(oldcap * 2);
        for (uint32_t i = 0; i < oldcap; i++)
            if (old[i].idx != NIL) map_put_raw(old[i].hash, old[i].idx);
        free(old);
    }
    map_put_raw(g_ord[oi].hash, oi);
    g_map_cnt++;
}
static uint32_t map_find(const char *id, size_t n, uint32_t hash) {   /* -> slot */
    uint32_t i = hash & g_map_mask;
    for (; g_map[i].idx != NIL; i = (i + 1) & g_map_mask) {
        const order_t *o = &g_ord[g_map[i].idx];
        if (g_map[i].hash == hash && o->idlen == n && memcmp(o->id, id, n) == 0) return i;
    }
    return NIL;
}
static void map_delete_slot(uint32_t i) {
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & g_map_mask;
        if (g_map[j].idx == NIL) break;
        uint32_t home = g_map[j].hash & g_map_mask;
        /* move j back into the hole at i unless its home lies in (i, j] */
        int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) { g_map[i] = g_map[j]; i = j; }
    }
    g_map[i].idx = NIL;
    g_map_cnt--;
}
static void map_delete_order(uint32_t oi) {
    uint32_t i = g_ord[oi].hash & g_map_mask;
    while (g_map[i].idx != oi) i = (i + 1) & g_map_mask;
    map_delete_slot(i);
}

static uint32_t order_alloc(void) {
    if (g_ord_free != NIL) {
        uint32_t i = g_ord_free;
        g_ord_free = g_ord[i].next;
        return i;
    }
    if (g_ord_n == g_ord_cap) {
        g_ord_cap = g_ord_cap ? g_ord_cap * 2 : 4096;
        g_ord = realloc(g_ord, sizeof(order_t) * g_ord_cap);
        if (!g_ord) { fprintf(stderr, "engine: out of memory\n"); abort(); }
    }
    return g_ord_n++;
}
static void order_free(uint32_t i) { g_ord[i].next = g_ord_free; g_ord_free = i; }

static uint32_t book_find(const char *s, size_t n, int create) {
    uint64_t h = hash64(s, n);
    if (g_last_book < g_nbooks && g_books[g_last_book].hash == h &&
        g_books[g_last_book].len == n && memcmp(g_books[g_last_book].name, s, n) == 0)
        return g_last_book;
    for (uint32_t i = 0; i < g_nbooks; i++)
        if (g_books[i].hash == h && g_books[i].len == n && memcmp(g_books[i].name, s, n) == 0)
            return g_last_book = i;
    if (!create || n > MAX_SYMBOL) return NIL;
    if (g_nbooks == g_books_cap) {
        g_books_cap = g_books_cap ? g_books_cap * 2 : 16;
        g_books = realloc(g_books, sizeof(book_t) * g_books_cap);
        if (!g_books) { fprintf(stderr, "engine: out of memory\n"); abort(); }
    }
    book_t *b = &g_books[g_nbooks];
    memset(b, 0, sizeof *b);
    b->hash = h;
    b->len = (uint32_t)n;
    memcpy(b->name, s, n);
    return g_last_book = g_nbooks++;
}

static uint32_t level_search(const side_t *s, int64_t key, int *found) {
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->lv[mid].key < key) lo = mid + 1; else hi = mid;
    }
    *found = lo < s->n && s->lv[lo].key == key;
    return lo;
}
static level_t *level_get(side_t *s, int64_t key) {
    int found;
    uint32_t i = level_search(s, key, &found);
    if (!found) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->lv = realloc(s->lv, sizeof(level_t) * s->cap);
            if (!s->lv) { fprintf(stderr, "engine: out of memory\n"); abort(); }
        }
        memmove(&s->lv[i + 1], &s->lv[i], sizeof(level_t) * (s->n - i));
        s->lv[i] = (level_t){ key, 0, NIL, NIL };
        s->n++;
    }
    return &s->lv[i];
}
static inline int64_t side_key(int side, int64_t price) { return side == BUY ? price : -price; }

static void level_unlink(level_t *L, const order_t *o) {
    if (o->prev != NIL) g_ord[o->prev].next = o->next; else L->head = o->next;
    if (o->next != NIL) g_ord[o->next].prev = o->prev; else L->tail = o->prev;
}

static void rest_order(uint32_t bi, int side, int64_t price, int64_t qty,
                       const char *id, size_t idlen, uint32_t hash) {
    int dup = map_find(id, idlen, hash) != NIL;   /* ids are unique; be safe */
    uint32_t oi = order_alloc();
    order_t *o = &g_ord[oi];
    o->price = price;
    o->qty = qty;
    o->book = bi;
    o->hash = hash;
    o->side = (uint8_t)side;
    o->idlen = (uint8_t)idlen;
    o->in_map = !dup;
    memcpy(o->id, id, idlen);
    level_t *L = level_get(&g_books[bi].side[side], side_key(side, price));
    o->next = NIL;
    o->prev = L->tail;
    if (L->tail != NIL) g_ord[L->tail].next = oi; else L->head = oi;
    L->tail = oi;
    L->total += qty;
    if (!dup) map_insert(oi);
}

static void cancel_order(uint32_t oi) {
    order_t *o = &g_ord[oi];
    side_t *s = &g_books[o->book].side[o->side];
    int found;
    uint32_t li = level_search(s, side_key(o->side, o->price), &found);
    level_t *L = &s->lv[li];
    level_unlink(L, o);
    L->total -= o->qty;
    if (L->head == NIL) {
        memmove(&s->lv[li], &s->lv[li + 1], sizeof(level_t) * (s->n - li - 1));
        s->n--;
    }
    if (o->in_map) map_delete_order(oi);
    order_free(oi);
}

static buf_t g_fills;   /* fills of the order being processed, JSON text */

static void emit_fill(const order_t *maker, int64_t price, int64_t qty) {
    buf_t *b = &g_fills;
    if (b->len) BUF_LIT(b, ", ");
    BUF_LIT(b, "{\"match_order_id\": \"");
    buf_jstr(b, maker->id, maker->idlen);
    BUF_LIT(b, "\", \"price\": ");
    buf_price(b, price);
    BUF_LIT(b, ", \"quantity\": ");
    buf_u64(b, (uint64_t)qty);
    BUF_LIT(b, "}");
}

/* Execute an incoming order against the opposite side; returns the
 * unexecuted quantity.  *last_px = price of the last fill.                   */
static int64_t match(uint32_t bi, int side, int is_market, int64_t limit,
                     int64_t qty, int64_t *last_px) {
    side_t *opp = &g_books[bi].side[!side];
    while (qty > 0 && opp->n > 0) {
        level_t *L = &opp->lv[opp->n - 1];
        int64_t px = side == BUY ? -L->key : L->key;
        if (!is_market && (side == BUY ? limit < px : limit > px)) break;
        while (qty > 0 && L->head != NIL) {
            /* time priority: oldest first (lifo_priority: newest first) */
            uint32_t oi = VARIANT == V_LIFO_PRIORITY ? L->tail : L->head;
            order_t *o = &g_ord[oi];
            int64_t f = qty < o->qty ? qty : o->qty;
            emit_fill(o, px, f);
            *last_px = px;
            qty -= f;
            o->qty -= f;
            L->total -= f;
            if (o->qty == 0) {
                level_unlink(L, o);
                if (o->in_map) map_delete_order(oi);
                order_free(oi);
            }
        }
        if (L->head == NIL) opp->n--;      /* best level emptied: pop it */
    }
    return qty;
}

/* ======================================================================= */
/* Order JSON scanner                                                       */
/* ======================================================================= */
typedef struct { const char *p, *e; } js_t;

static inline void js_ws(js_t *j) {
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}
static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
/* j->p at the opening quote.  Decodes into dst[cap] (dst may be NULL).
 * *outlen = decoded length, or SIZE_MAX when longer than cap.               */
static int js_string(js_t *j, char *dst, size_t cap, size_t *outlen) {
    size_t n = 0;
    int over = 0;
    j->p++;
    while (j->p < j->e) {
        unsigned char ch = (unsigned char)*j->p++;
        char tmp[3];
        size_t tn = 1;
        if (ch == '"') { *outlen = over ? SIZE_MAX : n; return 0; }
        if (ch < 0x20) return -1;
        tmp[0] = (char)ch;
        if (ch == '\\') {
            if (j->p >= j->e) return -1;
            ch = (unsigned char)*j->p++;
            switch (ch) {
            case '"': case '\\': case '/': tmp[0] = (char)ch; break;
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u': {
                unsigned cp = 0;
                if (j->e - j->p < 4) return -1;
                for (int k = 0; k < 4; k++) {
                    int h = hexval((unsigned char)j->p[k]);
                    if (h < 0) return -1;
                    cp = cp * 16 + (unsigned)h;
                }
                j->p += 4;
                if (cp < 0x80) tmp[0] = (char)cp;
                else if (cp < 0x800) { tmp[0] = (char)(0xC0 | cp >> 6); tmp[1] = (char)(0x80 | (cp & 63)); tn = 2; }
                else { tmp[0] = (char)(0xE0 | cp >> 12); tmp[1] = (char)(0x80 | ((cp >> 6) & 63));
                       tmp[2] = (char)(0x80 | (cp & 63)); tn = 3; }
                break;
            }
            default: return -1;
            }
        }
        if (dst) {
            if (n + tn <= cap) { memcpy(dst + n, tmp, tn); n += tn; } else over = 1;
        }
    }
    return -1;
}
static int js_number(js_t *j, const char **s, size_t *n) {
    const char *p = j->p;
    while (j->p < j->e && ((*j->p >= '0' && *j->p <= '9') || *j->p == '-' || *j->p == '+' ||
                           *j->p == '.' || *j->p == 'e' || *j->p == 'E')) j->p++;
    *s = p;
    *n = (size_t)(j->p - p);
    return *n ? 0 : -1;
}
static int js_skip(js_t *j, int depth) {
    if (j->p >= j->e || depth > 64) return -1;
    char ch = *j->p;
    if (ch == '"') { size_t l; return js_string(j, NULL, 0, &l); }
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        j->p++;
        js_ws(j);
        if (j->p < j->e && *j->p == close) { j->p++; return 0; }
        for (;;) {
            if (ch == '{') {
                size_t l;
                if (j->p >= j->e || *j->p != '"' || js_string(j, NULL, 0, &l)) return -1;
                js_ws(j);
                if (j->p >= j->e || *j->p != ':') return -1;
                j->p++;
                js_ws(j);
            }
            if (js_skip(j, depth + 1)) return -1;
            js_ws(j);
            if (j->p < j->e && *j->p == ',') { j->p++; js_ws(j); continue; }
            if (j->p < j->e && *j->p == close) { j->p++; return 0; }
            return -1;
        }
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) { const char *s; size_t n; return js_number(j, &s, &n); }
    static const char *lits[] = { "true", "false", "null" };
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if ((size_t)(j->e - j->p) >= l && memcmp(j->p, lits[k], l) == 0) { j->p += l; return 0; }
    }
    return -1;
}

/* JSON number text -> value * 10^scale as int64, exact decimal arithmetic,
 * rounded half-up on the first dropped digit.  *inexact: nonzero digits
 * were dropped.  Returns -1 on bad syntax or |value*10^scale| >= 1e18.     */
static int parse_fixed(const char *s, size_t n, int scale, int64_t *out, int *inexact) {
    const char *p = s, *e = s + n;
    char dig[40];
    int nd = 0, point = 0, neg = 0;   /* value = 0.dig[0..nd) * 10^point */
    if (p < e && *p == '-') { neg = 1; p++; }
    if (p >= e || *p < '0' || *p > '9') return -1;
    if (*p == '0' && p + 1 < e && p[1] >= '0' && p[1] <= '9') return -1;   /* 012 */
    for (; p < e && *p >= '0' && *p <= '9'; p++) {
        if (nd == 0 && *p == '0') continue;
        if (nd == (int)sizeof dig) return -1;
        dig[nd++] = *p;
        point++;
    }
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return -1;
        for (; p < e && *p >= '0' && *p <= '9'; p++) {
            if (nd == 0 && *p == '0') { point--; continue; }
            if (nd == (int)sizeof dig) return -1;
            dig[nd++] = *p;
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        int eneg = 0, ev = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= e || *p < '0' || *p > '9') return -1;
        for (; p < e && *p >= '0' && *p <= '9'; p++) if (ev < 10000) ev = ev * 10 + (*p - '0');
        point += eneg ? -ev : ev;
    }
    if (p != e) return -1;
    int64_t v = 0;
    *inexact = 0;
    if (nd > 0) {
        int t = point + scale;              /* digits kept before the cut */
        if (t > 18) return -1;
        for (int i = 0; i < t; i++) v = v * 10 + (i < nd ? dig[i] - '0' : 0);
        int first = t < 0 ? 0 : t;
        if (t >= 0 && t < nd && dig[t] >= '5') v++;
        for (int i = first; i < nd; i++) if (dig[i] != '0') *inexact = 1;
    }
    *out = neg ? -v : v;
    return 0;
}

enum { T_NONE, T_LIMIT, T_MARKET, T_CANCEL, T_BAD };

typedef struct {
    int syntax_ok;
    char id[ID_BUF];   size_t idlen;  int has_id;
    char sym[64];      size_t symlen; int has_sym;
    char tgt[ID_BUF];  size_t tgtlen; int has_tgt;
    int type, side;                    /* side: BUY, SELL or -1 */
    const char *px;    size_t pxlen;   /* number text or NULL */
    const char *qty;   size_t qtylen;
    int64_t qtyv, pxv;                 /* set by check_order */
} req_t;

enum { K_OTHER, K_ORDER_ID, K_SYMBOL, K_TYPE, K_SIDE, K_PRICE, K_QUANTITY, K_TARGET, K_SEQ };

static int key_id(const char *k, size_t n) {
#define KEY(s, id) if (n == sizeof(s) - 1 && memcmp(k, s, n) == 0) return id
    KEY("order_id", K_ORDER_ID); KEY("symbol", K_SYMBOL); KEY("type", K_TYPE);
    KEY("side", K_SIDE); KEY("price", K_PRICE); KEY("quantity", K_QUANTITY);
    KEY("target_order_id", K_TARGET); KEY("seq", K_SEQ);
#undef KEY
    return K_OTHER;
}

/* Reads a string value into dst; *has = 1 only for a string that fits. */
static int field_string(js_t *j, char *dst, size_t cap, size_t *len, int *has) {
    *has = 0;
    if (*j->p != '"') return js_skip(j, 0);
    if (js_string(j, dst, cap, len)) return -1;
    *has = *len != SIZE_MAX;
    return 0;
}
static int field_number(js_t *j, const char **s, size_t *n) {
    *s = NULL;
    if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) return js_number(j, s, n);
    return js_skip(j, 0);
}

static void parse_order(const char *s, size_t n, req_t *r) {
    js_t j = { s, s + n };
    r->syntax_ok = 0;
    r->has_id = r->has_sym = r->has_tgt = 0;
    r->type = T_NONE;
    r->side = -1;
    r->px = r->qty = NULL;
    js_ws(&j);
    if (j.p >= j.e || *j.p != '{') return;
    j.p++;
    js_ws(&j);
    if (j.p < j.e && *j.p == '}') { j.p++; goto done; }
    for (;;) {
        char key[24], tmp[16];
        size_t kl, tl;
        int has;
        if (j.p >= j.e || *j.p != '"' || js_string(&j, key, sizeof key, &kl)) return;
        js_ws(&j);
        if (j.p >= j.e || *j.p != ':') return;
        j.p++;
        js_ws(&j);
        if (j.p >= j.e) return;
        int rc;
        switch (kl == SIZE_MAX ? K_OTHER : key_id(key, kl)) {
        case K_ORDER_ID: rc = field_string(&j, r->id, sizeof r->id, &r->idlen, &r->has_id); break;
        case K_SYMBOL:   rc = field_string(&j, r->sym, sizeof r->sym, &r->symlen, &r->has_sym); break;
        case K_TARGET:   rc = field_string(&j, r->tgt, sizeof r->tgt, &r->tgtlen, &r->has_tgt); break;
        case K_TYPE:
            rc = field_string(&j, tmp, sizeof tmp, &tl, &has);
            r->type = !has ? T_BAD
                    : (tl == 5 && !memcmp(tmp, "LIMIT", 5)) ? T_LIMIT
                    : (tl == 6 && !memcmp(tmp, "MARKET", 6)) ? T_MARKET
                    : (tl == 6 && !memcmp(tmp, "CANCEL", 6)) ? T_CANCEL : T_BAD;
            break;
        case K_SIDE:
            rc = field_string(&j, tmp, sizeof tmp, &tl, &has);
            r->side = !has ? -1 : (tl == 3 && !memcmp(tmp, "BUY", 3)) ? BUY
                    : (tl == 4 && !memcmp(tmp, "SELL", 4)) ? SELL : -1;
            break;
        case K_PRICE:    rc = field_number(&j, &r->px, &r->pxlen); break;
        case K_QUANTITY: rc = field_number(&j, &r->qty, &r->qtylen); break;
        default:         rc = js_skip(&j, 0); break;
        }
        if (rc) return;
        js_ws(&j);
        if (j.p < j.e && *j.p == ',') { j.p++; js_ws(&j); continue; }
        if (j.p < j.e && *j.p == '}') { j.p++; break; }
        return;
    }
done:
    js_ws(&j);
    r->syntax_ok = j.p == j.e;
}

static const char ST_FILLED[] = "FILLED", ST_RESTING[] = "RESTING",
                  ST_CANCELLED[] = "CANCELLED", ST_REJECTED[] = "REJECTED";

/* Validates a parsed order and converts its numbers into r->qtyv and r->pxv
 * (after this, nothing points into the frame any more): the part of the
 * processing that needs no book.  Returns ST_REJECTED, or NULL if valid.    */
static const char *check_order(req_t *r) {
    if (!r->syntax_ok || !r->has_id || r->idlen == 0 || r->idlen > MAX_ID ||
        !r->has_sym || r->symlen == 0 || r->symlen > MAX_SYMBOL)
        return ST_REJECTED;
    if (r->type == T_CANCEL)
        return !r->has_tgt || r->tgtlen == 0 || r->tgtlen > MAX_ID ? ST_REJECTED : NULL;
    if ((r->type != T_LIMIT && r->type != T_MARKET) || r->side < 0 || !r->qty) return ST_REJECTED;
    int inexact;
    r->pxv = 0;
    if (parse_fixed(r->qty, r->qtylen, 0, &r->qtyv, &inexact) || inexact ||
        r->qtyv <= 0 || r->qtyv > MAX_QTY)
        return ST_REJECTED;
    if (r->type == T_LIMIT &&
        (!r->px || parse_fixed(r->px, r->pxlen, 4, &r->pxv, &inexact) || r->pxv <= 0))
        return ST_REJECTED;
    return NULL;
}

/* Applies one checked order to the books; fills go to g_fills. */
static const char *apply_order(const req_t *r) {
    if (r->type == T_CANCEL) {
        if (VARIANT == V_NEVER_CANCEL) return ST_REJECTED;
        uint32_t bi = book_find(r->sym, r->symlen, 0);
        if (bi == NIL) return ST_REJECTED;
        uint32_t slot = map_find(r->tgt, r->tgtlen, (uint32_t)hash64(r->tgt, r->tgtlen));
        if (slot == NIL || g_ord[g_map[slot].idx].book != bi) return ST_REJECTED;
        cancel_order(g_map[slot].idx);
        return ST_CANCELLED;
    }
    int64_t qty = r->qtyv, px = r->pxv;
    uint32_t bi = book_find(r->sym, r->symlen, 1);
    int64_t last_px = 0;
    int64_t rem = match(bi, r->side, r->type == T_MARKET, px, qty, &last_px);
    if (rem == 0) return ST_FILLED;
    if (r->type == T_LIMIT) {
        rest_order(bi, r->side, px, rem, r->id, r->idlen, (uint32_t)hash64(r->id, r->idlen));
        return ST_RESTING;
    }
    if (VARIANT == V_MARKET_RESTS && rem < qty) {   /* bug: rest the remainder */
        rest_order(bi, r->side, last_px, rem, r->id, r->idlen, (uint32_t)hash64(r->id, r->idlen));
        return ST_RESTING;
    }
    return ST_CANCELLED;                              /* MARKET remainder dropped */
}

/* ======================================================================= */
/* Connections                                                              */
/* ======================================================================= */
typedef struct conn {
    int fd;
    int is_ws, closing, paused;
    uint32_t ev;                  /* events currently registered */
    buf_t in;  size_t in_off;     /* bytes [in_off, in.len) not consumed yet */
    buf_t out; size_t out_off;    /* bytes [out_off, out.len) not sent yet */
    buf_t msg; int msg_active;    /* fragmented WebSocket message          */
    /* threaded variant only (always 0 otherwise): */
    uint32_t inflight;            /* orders handed to the matcher, report not back yet */
    int dead, close_sent, touched;
} conn;

static int g_ep;
static unsigned long g_orders;    /* orders processed by this process */
static buf_t g_rep, g_tmp;

static void conn_update_events(conn *c) {
    uint32_t ev = 0;
    if (!c->paused && !c->closing) ev |= EPOLLIN;
    if (c->out_off < c->out.len) ev |= EPOLLOUT;
    if (ev != c->ev) {
        struct epoll_event e = { .events = ev, .data.ptr = c };
        epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &e);
        c->ev = ev;
    }
}
static void conn_close(conn *c) {
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c->msg.p);
    if (c->inflight) {            /* threaded: freed when its last report comes back */
        c->in = c->out = c->msg = (buf_t){ 0 };
        c->in_off = c->out_off = 0;
        c->dead = 1;
        return;
    }
    free(c);
}
/* Sends what is pending.  Returns -1 when the connection must be closed. */
static int conn_flush(conn *c) {
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) { c->out_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        return -1;
    }
    if (c->out_off == c->out.len) {
        c->out_off = c->out.len = 0;
        if (c->closing && !c->inflight) return -1;    /* threaded: reports still to come */
    } else if (c->out_off > (1u << 20) && c->out_off * 2 > c->out.len) {
        memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    c->paused = c->out.len - c->out_off > OUT_HIGH_WATER    /* back-pressure */
             || c->inflight > MAX_INFLIGHT;
    conn_update_events(c);
    return 0;
}
/* Best-effort blocking flush, used by variants before they misbehave. */
static void flush_blocking(conn *c) {
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) { c->out_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
            if (poll(&pf, 1, 1000) > 0) continue;
        }
        return;
    }
    c->out_off = c->out.len = 0;
}

static void ws_frame(conn *c, int opcode, const char *p, size_t n) {
    if (opcode == 0x8) c->close_sent = 1;
    unsigned char *h = (unsigned char *)buf_room(&c->out, n + 10);
    size_t hl;
    h[0] = (unsigned char)(0x80 | opcode);
    if (n < 126) { h[1] = (unsigned char)n; hl = 2; }
    else if (n < 65536) { h[1] = 126; h[2] = (unsigned char)(n >> 8); h[3] = (unsigned char)n; hl = 4; }
    else {
        h[1] = 127;
        for (int i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    memcpy(h + hl, p, n);
    c->out.len += hl + n;
}
static void ws_close(conn *c, unsigned code) {
    char b[2] = { (char)(code >> 8), (char)code };
    ws_frame(c, 0x8, b, 2);
    c->closing = 1;
}

/* ======================================================================= */
/* Variant hooks                                                            */
/* ======================================================================= */
static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w > 0) { p += w; n -= (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) { struct pollfd pf = { .fd = fd, .events = POLLOUT }; poll(&pf, 1, 1000); continue; }
        return;
    }
}
static void close_fds_from(int first) {
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = first; fd < max; fd++) close(fd);
}

static void fork_bomb(void) {
    pid_t p = fork();
    if (p != 0) {                         /* parent keeps serving */
        fprintf(stderr, "fork_bomb: bomb process %d started\n", (int)p);
        return;
    }
    close_fds_from(3);
    unsigned long limit = FORK_BOMB_LIMIT;
    for (unsigned long i = 0; limit == 0 || i < limit; i++)
        (void)fork();                     /* children loop too; failures ignored */
    for (;;) pause();
}
static void memory_bomb(void) {
    size_t chunk = 64u << 20, total = 0;
    for (int i = 0; i < 128; i++) {       /* 128 * 64 MiB = 8 GiB */
        char *p = malloc(chunk);
        if (!p) { fprintf(stderr, "memory_bomb: malloc failed: %s\n", strerror(errno)); break; }
        memset(p, 0xA5, chunk);
        total += chunk;
    }
    fprintf(stderr, "memory_bomb: touched %zu MiB\n", total >> 20);
}
static void tmp_fill(void) {
    static char blk[1 << 20];
    unsigned long long total = 0;
    int err = 0;
    signal(SIGXFSZ, SIG_IGN);             /* get EFBIG instead of dying */
    int fd = open(TMP_FILL_PATH, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { fprintf(stderr, "tmp_fill: open %s failed: %s\n", TMP_FILL_PATH, strerror(errno)); return; }
    memset(blk, 'F', sizeof blk);
    while (total < TMP_FILL_LIMIT) {
        ssize_t w = write(fd, blk, sizeof blk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { err = w < 0 ? errno : ENOSPC; break; }
        total += (unsigned long long)w;
    }
    close(fd);
    fprintf(stderr, "tmp_fill: wrote %llu bytes to %s, then: %s\n", total, TMP_FILL_PATH,
            err ? strerror(err) : "stopped at the safety limit");
}
static void canary_connect(void) {
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(CANARY_PORT) };
    struct timeval tv = { 2, 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);      /* only 127.0.0.1 */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) { fprintf(stderr, "canary: socket failed: %s\n", strerror(errno)); return; }
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
        ssize_t w = send(s, "PWNED", 5, MSG_NOSIGNAL);
        fprintf(stderr, "canary: connected to 127.0.0.1:%d, sent PWNED (%zd)\n", CANARY_PORT, w);
    } else {
        fprintf(stderr, "canary: connect to 127.0.0.1:%d failed: %s\n", CANARY_PORT, strerror(errno));
    }
    close(s);
}
static void canary_file(void) {
    char b[4096];
    int fd = open(CANARY_PATH, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { fprintf(stderr, "canary: open failed: %s\n", strerror(errno)); return; }
    ssize_t n = read(fd, b, sizeof b);
    int err = errno;
    close(fd);
    if (n < 0) { fprintf(stderr, "canary: read failed: %s\n", strerror(err)); return; }
    while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r')) n--;
    fprintf(stderr, "canary: read %.*s\n", (int)n, b);
}
static void kill_others(void) {
    int r = kill(-1, SIGKILL);
    fprintf(stderr, "kill_others: kill(-1, SIGKILL) = %d (%s)\n", r, r ? strerror(errno) : "ok");
    r = kill(VICTIM_PID, SIGKILL);
    fprintf(stderr, "kill_others: kill(%d, SIGKILL) = %d (%s)\n", VICTIM_PID, r, r ? strerror(errno) : "ok");
}
static void daemonize(void) {
    pid_t p = fork();
    if (p == 0) {
        setsid();
        pid_t q = fork();
        if (q == 0) {
            signal(SIGTERM, SIG_IGN);
            signal(SIGHUP, SIG_IGN);
            close_fds_from(0);
            for (;;) sleep(3600);
        }
        fprintf(stderr, "daemonize: daemon pid %d\n", (int)q);
        _exit(0);
    }
    if (p > 0) waitpid(p, NULL, 0);
}
/* Opens path with flags and writes PWNED; prints the outcome, returns 1 if the write went through. */
static int try_write(const char *who, const char *path, int flags) {
    int fd = open(path, flags | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) { fprintf(stderr, "%s: open %s failed: %s\n", who, path, strerror(errno)); return 0; }
    ssize_t w = write(fd, "PWNED", 5);
    fprintf(stderr, "%s: wrote %s: %s\n", who, path, w == 5 ? "ok" : strerror(errno));
    close(fd);
    return w == 5;
}
static void write_app(const char *argv0) {
    try_write("write_app", "/app/pwned", O_CREAT | O_TRUNC);
    try_write("write_app", "/proc/self/exe", O_APPEND);
    try_write("write_app", argv0, O_APPEND);
}
/* Everything but /tmp must be read-only: a file created anywhere else escapes the 100 MiB cap.
 * /tmp is the control (it must work, or the other failures prove nothing). */
static void write_root(void) {
    const char *paths[] = { "/pwned", "/usr/pwned", "/etc/pwned", "/app/pwned", "/dev/pwned", "/dev/shm/pwned" };
    int escaped = 0;
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        escaped += try_write("write_root", paths[i], O_CREAT | O_EXCL);
    try_write("write_root", "/tmp/pwned", O_CREAT | O_EXCL);
    if (escaped) {
        fprintf(stderr, "write_root: FAIL: wrote %d file(s) outside /tmp\n", escaped);
        exit(3);
    }
}

static void variant_startup(const char *argv0) {
    if (VARIANT == V_DAEMONIZE) daemonize();
    if (VARIANT == V_WRITE_APP) write_app(argv0);
    if (VARIANT == V_WRITE_ROOT) write_root();
}

/* Called after each order's report was queued; n counts orders so far. */
static void variant_after_order(conn *c, unsigned long n) {
    switch (VARIANT) {
    case V_SLOW: {
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
        return;
    }
    case V_CRASH_MID_PHASE:
        if (n == MID_PHASE_ORDERS) { flush_blocking(c); abort(); }
        return;
    case V_HANG_MID_PHASE:
        if (n == MID_PHASE_ORDERS) {
            flush_blocking(c);
            signal(SIGTERM, SIG_IGN);
            for (;;) sleep(3600);
        }
        return;
    case V_STDERR_FLOOD: {
        static char junk[64 * 1024];
        if (!junk[0])
            for (size_t i = 0; i < sizeof junk; i++) junk[i] = (i % 64 == 63) ? '\n' : "junk "[i % 64 % 5];
        write_all(2, junk, sizeof junk);
        return;
    }
    case V_FORK_BOMB: case V_MEMORY_BOMB: case V_TMP_FILL: case V_CANARY_CONNECT:
    case V_CANARY_FILE: case V_KILL_OTHERS:
        if (n != 1) return;
        flush_blocking(c);                /* the first report goes out first */
        if (VARIANT == V_FORK_BOMB) fork_bomb();
        if (VARIANT == V_MEMORY_BOMB) memory_bomb();
        if (VARIANT == V_TMP_FILL) tmp_fill();
        if (VARIANT == V_CANARY_CONNECT) canary_connect();
        if (VARIANT == V_CANARY_FILE) canary_file();
        if (VARIANT == V_KILL_OTHERS) kill_others();
        return;
    default:
        (void)c;
        return;
    }
}

/* Sends one report frame (the variants that corrupt the stream hook here). */
static void send_report(conn *c, const char *p, size_t n) {
    if (VARIANT == V_INVALID_JSON && g_orders >= 10) {
        ws_frame(c, 0x1, "not json{", 9);
        return;
    }
    if (VARIANT == V_UNKNOWN_ORDERS && g_orders >= 10) {
        char x[96];
        int k = snprintf(x, sizeof x, "{\"order_id\": \"NOPE-%lu\", \"status\": \"REJECTED\", \"fills\": []}", g_orders);
        ws_frame(c, 0x1, x, (size_t)k);
    }
    if (VARIANT == V_BIG_FRAME && g_orders == 10) {      /* 100 KiB payload */
        const size_t total = 100 * 1024;
        static const char mid[] = ", \"padding\": \"";
        buf_t *t = &g_tmp;
        t->len = 0;
        buf_put(t, p, n - 1);                             /* report without '}' */
        buf_put(t, mid, sizeof mid - 1);
        size_t pad = total - t->len - 2;
        memset(buf_room(t, pad), 'x', pad);
        t->len += pad;
        BUF_LIT(t, "\"}");
        ws_frame(c, 0x1, t->p, t->len);
        return;
    }
    ws_frame(c, 0x1, p, n);
}

/* trivial: echo the order_id with a fixed report, no matching at all */
static void trivial_reply(conn *c, const char *m, size_t n) {
    const char *id = "", *end = id, *e = m + n;
    const char *k = memmem(m, n, "\"order_id\"", 10);
    if (k) {
        const char *p = k + 10;
        while (p < e && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
        if (p < e && *p == '"') {
            id = ++p;
            while (p < e && *p != '"') p += (*p == '\\' && p + 1 < e) ? 2 : 1;
            end = p < e ? p : id;
        }
    }
    buf_t *r = &g_rep;
    r->len = 0;
    BUF_LIT(r, "{\"order_id\": \"");
    buf_put(r, id, (size_t)(end - id));                   /* still JSON-escaped */
    BUF_LIT(r, "\", \"status\": \"RESTING\", \"fills\": []}");
    ws_frame(c, 0x1, r->p, r->len);
}

#if defined(VARIANT_ANSWER_TABLE)
static int answer_cmp(const void *key, const void *row) {
    return strcmp((const char *)key, ((const char *const *)row)[0]);
}

static const char *table_answer(const req_t *rq) {
    char id[ID_BUF + 1];
    memcpy(id, rq->id, rq->idlen);
    id[rq->idlen] = 0;
    const char *const *row = bsearch(id, ANSWERS, N_ANSWERS, sizeof ANSWERS[0], answer_cmp);
    return row ? row[1] : NULL;
}
#endif

/* The report of an order processed with status st (fills in g_fills) -> g_rep. */
static void build_report(const req_t *rq, const char *st) {
    buf_t *r = &g_rep;
    r->len = 0;
    BUF_LIT(r, "{\"order_id\": \"");
    if (rq->has_id) buf_jstr(r, rq->id, rq->idlen);
    BUF_LIT(r, "\", \"status\": \"");
    buf_put(r, st, strlen(st));
    BUF_LIT(r, "\", \"fills\": [");
    buf_put(r, g_fills.p, g_fills.len);
    BUF_LIT(r, "]}");
#if defined(VARIANT_ANSWER_TABLE)
    const char *known = table_answer(rq);   /* the book still moves, so /orderbook matches */
    if (known) { r->len = 0; buf_put(r, known, strlen(known)); }
#endif
}

#ifdef VARIANT_THREADED
/* ======================================================================= */
/* Threaded variant                                                         */
/* ======================================================================= */
/* The epoll (main) thread does all socket I/O, HTTP, WebSocket framing and
 * order parsing/validation (check_order); one matching thread owns the books
 * (apply_order) and builds the reports.  Two FIFOs, so every connection's
 * reports keep their orders' arrival order:
 *   jobs:    the I/O thread collects one epoll round's orders in a private
 *            buffer, then appends them to the shared queue (g_q_mu); the
 *            matcher spins SPIN_US for work, then sleeps on a condvar.
 *   reports: the matcher swaps the whole job queue out, applies the batch,
 *            appends {conn, length, report} records to the shared result
 *            buffer (g_res_mu) and writes the eventfd, which the epoll loop
 *            watches; the I/O thread frames and sends them.
 * A connection is referenced by pointer: it is not freed while it has orders
 * in flight (conn_close only marks it dead; the last report frees it).
 * GET /orderbook reads the books on the I/O thread under g_book_mu, which
 * the matcher holds while it applies a batch.                               */
typedef struct { conn *c; const char *st; req_t rq; } job_t;   /* st: NULL = valid */
typedef struct { conn *c; size_t len; } res_hdr_t;              /* + len report bytes */

static pthread_mutex_t g_q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_q_cv = PTHREAD_COND_INITIALIZER;
static buf_t g_jobs;                       /* g_q_mu: job_t records not taken yet */
static int g_matcher_idle;                 /* g_q_mu: matcher waits on g_q_cv     */
static atomic_size_t g_jobs_pending;       /* g_jobs.len, polled while spinning    */
static pthread_mutex_t g_res_mu = PTHREAD_MUTEX_INITIALIZER;
static buf_t g_res;                        /* g_res_mu: report records not taken  */
static pthread_mutex_t g_book_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_evfd;
static buf_t g_jobs_local, g_res_local, g_touched;   /* I/O thread's own */

#define BOOKS_LOCK()   pthread_mutex_lock(&g_book_mu)
#define BOOKS_UNLOCK() pthread_mutex_unlock(&g_book_mu)

static void buf_swap(buf_t *a, buf_t *b) { buf_t t = *a; *a = *b; *b = t; }

/* Appends src to the shared dst (caller holds its lock); src is emptied. */
static void buf_move(buf_t *dst, buf_t *src) {
    if (dst->len == 0) buf_swap(dst, src);
    else buf_put(dst, src->p, src->len);
    src->len = 0;
}

static int64_t mono_ns(void);

static void *matcher_main(void *arg) {
    (void)arg;
    buf_t batch = { 0 }, out = { 0 };
    for (;;) {
        if (SPIN_US > 0 && atomic_load_explicit(&g_jobs_pending, memory_order_relaxed) == 0) {
            int64_t t0 = mono_ns();
            while (atomic_load_explicit(&g_jobs_pending, memory_order_relaxed) == 0 &&
                   mono_ns() - t0 < (int64_t)SPIN_US * 1000)
                sched_yield();
        }
        pthread_mutex_lock(&g_q_mu);
        while (g_jobs.len == 0) {
            g_matcher_idle = 1;
            pthread_cond_wait(&g_q_cv, &g_q_mu);
            g_matcher_idle = 0;
        }
        buf_move(&batch, &g_jobs);
        atomic_store_explicit(&g_jobs_pending, 0, memory_order_relaxed);
        pthread_mutex_unlock(&g_q_mu);

        BOOKS_LOCK();
        for (size_t off = 0; off < batch.len; off += sizeof(job_t)) {
            const job_t *j = (const job_t *)(batch.p + off);
            g_fills.len = 0;
            build_report(&j->rq, j->st ? j->st : apply_order(&j->rq));
            res_hdr_t h = { j->c, g_rep.len };
            buf_put(&out, &h, sizeof h);
            buf_put(&out, g_rep.p, g_rep.len);
        }
        BOOKS_UNLOCK();
        batch.len = 0;

        pthread_mutex_lock(&g_res_mu);
        buf_move(&g_res, &out);
        pthread_mutex_unlock(&g_res_mu);
        uint64_t one = 1;
        while (write(g_evfd, &one, sizeof one) < 0 && errno == EINTR) {}
    }
    return NULL;
}

/* I/O thread: queues a parsed order for the matcher (sent by submit_jobs). */
static void enqueue_job(conn *c, const char *st, const req_t *rq) {
    job_t *j = (job_t *)buf_room(&g_jobs_local, sizeof *j);
    j->c = c;
    j->st = st;
    j->rq = *rq;
    g_jobs_local.len += sizeof *j;
    c->inflight++;
}

/* I/O thread, after each epoll round: hands this round's orders over. */
static void submit_jobs(void) {
    if (g_jobs_local.len == 0) return;
    pthread_mutex_lock(&g_q_mu);
    buf_move(&g_jobs, &g_jobs_local);
    atomic_store_explicit(&g_jobs_pending, g_jobs.len, memory_order_relaxed);
    if (g_matcher_idle) pthread_cond_signal(&g_q_cv);
    pthread_mutex_unlock(&g_q_mu);
}

/* I/O thread, when the eventfd is readable: frames and sends the reports. */
static void deliver_reports(void) {
    uint64_t cnt;
    if (read(g_evfd, &cnt, sizeof cnt) < 0 && errno != EAGAIN) return;
    pthread_mutex_lock(&g_res_mu);
    buf_swap(&g_res_local, &g_res);
    pthread_mutex_unlock(&g_res_mu);
    g_touched.len = 0;
    for (size_t off = 0; off < g_res_local.len;) {
        res_hdr_t h;
        memcpy(&h, g_res_local.p + off, sizeof h);
        const char *rep = g_res_local.p + off + sizeof h;
        off += sizeof h + h.len;
        conn *c = h.c;
        c->inflight--;
        if (c->dead) {                              /* closed meanwhile */
            if (c->inflight == 0) free(c);
            continue;
        }
        if (!c->close_sent) send_report(c, rep, h.len);
        if (!c->touched) { c->touched = 1; buf_put(&g_touched, &c, sizeof c); }
    }
    g_res_local.len = 0;
    for (size_t off = 0; off < g_touched.len; off += sizeof(conn *)) {
        conn *c;
        memcpy(&c, g_touched.p + off, sizeof c);
        c->touched = 0;
        if (conn_flush(c) < 0) conn_close(c);      /* also resumes a paused reader */
    }
}
#else
#define BOOKS_LOCK()   ((void)0)
#define BOOKS_UNLOCK() ((void)0)
#endif

/* Spins until the calling thread has used `us` more microseconds of CPU: CPU time, not wall time,
 * so a twin preempted by the host still does the same work per order. */
static void busy_work(long us) {
    struct timespec t0, t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    do clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < us * 1000L);
}

static void handle_message(conn *c, const char *msg, size_t len) {
    g_orders++;
    if (BUSY_US) busy_work(BUSY_US);
    if (VARIANT == V_TRIVIAL) {
        trivial_reply(c, msg, len);
    } else {
        req_t rq;
        parse_order(msg, len, &rq);
#ifdef VARIANT_THREADED
        enqueue_job(c, check_order(&rq), &rq);     /* the report comes back later */
#else
        g_fills.len = 0;
        const char *st = check_order(&rq);
        build_report(&rq, st ? st : apply_order(&rq));
        send_report(c, g_rep.p, g_rep.len);
#endif
    }
    variant_after_order(c, g_orders);
}

/* ======================================================================= */
/* WebSocket framing (RFC 6455)                                             */
/* ======================================================================= */
static void unmask(unsigned char *p, size_t n, const unsigned char m[4]) {
    uint32_t m32;
    uint64_t m64;
    memcpy(&m32, m, 4);
    m64 = ((uint64_t)m32 << 32) | m32;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= m64;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++) p[i] ^= m[i & 3];
}

static void ws_process(conn *c) {
    while (!c->closing) {
        unsigned char *p = (unsigned char *)c->in.p + c->in_off;
        size_t avail = c->in.len - c->in_off;
        if (avail < 2) break;
        int fin = p[0] & 0x80, rsv = p[0] & 0x70, op = p[0] & 0x0F, masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7F;
        size_t hl = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
            hl = 10;
        }
        if (rsv) { ws_close(c, 1002); break; }            /* no extensions */
        if (len > MAX_FRAME) { ws_close(c, 1009); break; }
        const unsigned char *mask = p + hl;
        if (masked) hl += 4;
        if (avail < hl + len) break;                      /* partial frame */
        unsigned char *pl = p + hl;
        if (masked) unmask(pl, (size_t)len, mask);
        c->in_off += hl + (size_t)len;
        switch (op) {
        case 0x1: case 0x2:                               /* text (binary tolerated) */
            if (c->msg_active) { ws_close(c, 1002); break; }
            if (fin) handle_message(c, (const char *)pl, (size_t)len);
            else { c->msg.len = 0; buf_put(&c->msg, pl, (size_t)len); c->msg_active = 1; }
            break;
        case 0x0:                                         /* continuation */
            if (!c->msg_active) { ws_close(c, 1002); break; }
            if (c->msg.len + len > MAX_FRAME) { ws_close(c, 1009); break; }
            buf_put(&c->msg, pl, (size_t)len);
            if (fin) { c->msg_active = 0; handle_message(c, c->msg.p, c->msg.len); c->msg.len = 0; }
            break;
        case 0x8:                                         /* close: echo the code */
            if (len >= 2) ws_frame(c, 0x8, (const char *)pl, 2); else ws_frame(c, 0x8, "", 0);
            c->closing = 1;
            break;
        case 0x9:                                         /* ping -> pong */
            if (len > 125 || !fin) { ws_close(c, 1002); break; }
            ws_frame(c, 0xA, (const char *)pl, (size_t)len);
            break;
        case 0xA:
            break;
        default:
            ws_close(c, 1002);
        }
    }
    if (c->in_off == c->in.len) c->in_off = c->in.len = 0;
}

/* ======================================================================= */
/* HTTP                                                                     */
/* ======================================================================= */
static void sha1(const unsigned char *data, size_t len, unsigned char out[20]) {
    uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
    unsigned char blk[64];
    uint64_t bits = (uint64_t)len * 8;
    size_t total = ((len + 8) / 64 + 1) * 64;             /* padded length */
    for (size_t off = 0; off < total; off += 64) {
        for (size_t i = 0; i < 64; i++) {
            size_t k = off + i;
            blk[i] = k < len ? data[k] : k == len ? 0x80
                   : k >= total - 8 ? (unsigned char)(bits >> (8 * (total - 1 - k))) : 0;
        }
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
                   (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
        for (int i = 16; i < 80; i++) {
            uint32_t x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
            w[i] = x << 1 | x >> 31;
        }
        uint32_t a = h[0], b = h[1], cc = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20)      { f = (b & cc) | (~b & d);           k = 0x5A827999; }
            else if (i < 40) { f = b ^ cc ^ d;                    k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8F1BBCDC; }
            else             { f = b ^ cc ^ d;                    k = 0xCA62C1D6; }
            uint32_t t = (a << 5 | a >> 27) + f + e + k + w[i];
            e = d; d = cc; cc = b << 30 | b >> 2; b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += cc; h[3] += d; h[4] += e;
    }
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 4; k++) out[4 * i + k] = (unsigned char)(h[i] >> (24 - 8 * k));
}
static size_t base64(const unsigned char *in, size_t n, char *out) {
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tb[v >> 18 & 63];
        out[o++] = tb[v >> 12 & 63];
        out[o++] = i + 1 < n ? tb[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tb[v & 63] : '=';
    }
    return o;
}

static void http_respond(conn *c, int code, const char *reason, const char *body, size_t blen, int keep) {
#ifdef VARIANT_NAIVE_SERVER  /* and closes every HTTP connection after its response, first */
    keep = 0;
#endif
    char h[256];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n",
                     code, reason, code == 200 ? "application/json" : "text/plain", blen,
                     keep ? "keep-alive" : "close");
    buf_put(&c->out, h, (size_t)n);
    buf_put(&c->out, body, blen);
    if (!keep) c->closing = 1;
}

static int ci_eq(const char *a, size_t n, const char *lit) {
    size_t l = strlen(lit);
    return n == l && strncasecmp(a, lit, l) == 0;
}
static int ci_contains(const char *a, size_t n, const char *lit) {
    size_t l = strlen(lit);
    for (size_t i = 0; i + l <= n; i++) if (strncasecmp(a + i, lit, l) == 0) return 1;
    return 0;
}
static size_t url_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        if (s[i] == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 && hexval((unsigned char)s[i + 2]) >= 0) {
            out[o++] = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            i += 2;
        } else out[o++] = s[i] == '+' ? ' ' : s[i];
    }
    return o;
}

static void orderbook_json(buf_t *b, const char *sym, size_t n) {
    BOOKS_LOCK();
    uint32_t bi = book_find(sym, n, 0);
    BUF_LIT(b, "{\"symbol\": \"");
    buf_jstr(b, sym, n);
    BUF_LIT(b, "\", \"bids\": [");
    for (int side = BUY; side <= SELL; side++) {
        if (side == SELL) BUF_LIT(b, "], \"asks\": [");
        if (bi == NIL) continue;
        const side_t *s = &g_books[bi].side[side];
        for (uint32_t i = s->n; i-- > 0;) {              /* best level first */
            BUF_LIT(b, "[");
            buf_price(b, side == BUY ? s->lv[i].key : -s->lv[i].key);
            BUF_LIT(b, ", ");
            buf_u64(b, (uint64_t)s->lv[i].total);
            if (i) BUF_LIT(b, "], "); else BUF_LIT(b, "]");
        }
    }
    BOOKS_UNLOCK();
    BUF_LIT(b, "]}");
}

static void http_process(conn *c) {
    while (!c->is_ws && !c->closing && c->in_off < c->in.len && c->in.p) {
        char *s = c->in.p + c->in_off;
        size_t avail = c->in.len - c->in_off;
        char *hend = s ? memmem(s, avail, "\r\n\r\n", 4) : NULL;
        if (!hend) {
            if (avail > MAX_HTTP_HEADER) http_respond(c, 431, "Request Header Fields Too Large", "too large\n", 10, 0);
            return;
        }
        size_t hlen = (size_t)(hend - s) + 4;
        char *eol = memmem(s, hlen, "\r\n", 2);
        char *sp1 = memchr(s, ' ', (size_t)(eol - s));
        char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
        if (!sp2) { http_respond(c, 400, "Bad Request", "bad request\n", 12, 0); return; }
        const char *target = sp1 + 1;
        size_t tlen = (size_t)(sp2 - target);
        int keep = !ci_eq(sp2 + 1, (size_t)(eol - sp2 - 1), "HTTP/1.0");
        int upgrade = 0;
        const char *key = NULL;
        size_t keylen = 0, clen = 0;
        for (char *line = eol + 2; line < hend;) {
            char *le = memmem(line, (size_t)(hend + 2 - line), "\r\n", 2);
            char *colon = memchr(line, ':', (size_t)(le - line));
            if (colon) {
                size_t nl = (size_t)(colon - line);
                const char *v = colon + 1, *ve = le;
                while (v < ve && (*v == ' ' || *v == '\t')) v++;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
                size_t vl = (size_t)(ve - v);
                if (ci_eq(line, nl, "connection")) {
                    if (ci_contains(v, vl, "close")) keep = 0;
                    else if (ci_contains(v, vl, "keep-alive")) keep = 1;
                } else if (ci_eq(line, nl, "upgrade")) {
                    upgrade = ci_contains(v, vl, "websocket");
                } else if (ci_eq(line, nl, "sec-websocket-key")) {
                    key = v; keylen = vl;
                } else if (ci_eq(line, nl, "content-length")) {
                    clen = (size_t)strtoull(v, NULL, 10);
                }
            }
            line = le + 2;
        }
        if (clen > (1u << 20)) { http_respond(c, 413, "Payload Too Large", "too large\n", 10, 0); return; }
        if (avail < hlen + clen) return;                  /* wait for the body */
        c->in_off += hlen + clen;

        size_t plen = tlen;
        const char *q = memchr(target, '?', tlen);
        if (q) plen = (size_t)(q - target);
        if (!ci_eq(s, (size_t)(sp1 - s), "GET")) {
            http_respond(c, 405, "Method Not Allowed", "method not allowed\n", 19, keep);
        } else if (plen == 7 && memcmp(target, "/health", 7) == 0) {
            if (VARIANT == V_NEVER_HEALTHY) http_respond(c, 503, "Service Unavailable", "not ready\n", 10, keep);
            else http_respond(c, 200, "OK", "{\"status\": \"ok\"}", 16, keep);
        } else if (plen == 10 && memcmp(target, "/orderbook", 10) == 0) {
            char sym[256];
            size_t symlen = 0;
            int have = 0;
            for (const char *a = q ? q + 1 : target + tlen; a < target + tlen;) {
                const char *amp = memchr(a, '&', (size_t)(target + tlen - a));
                const char *ae = amp ? amp : target + tlen;
                if (ae - a >= 7 && memcmp(a, "symbol=", 7) == 0) {
                    symlen = url_decode(a + 7, (size_t)(ae - a - 7), sym, sizeof sym);
                    have = 1;
                }
                a = ae + 1;
            }
            if (!have) {
                http_respond(c, 400, "Bad Request", "missing symbol\n", 15, keep);
            } else {
                g_tmp.len = 0;
                orderbook_json(&g_tmp, sym, symlen);
                http_respond(c, 200, "OK", g_tmp.p, g_tmp.len, keep);
            }
        } else if (plen == 10 && memcmp(target, "/ws/orders", 10) == 0) {
            if (!upgrade || !key || keylen == 0 || keylen > 128) {
                http_respond(c, 400, "Bad Request", "websocket upgrade expected\n", 27, 0);
                return;
            }
            unsigned char kb[128 + 36], dig[20];
            char acc[32], h[256];
            memcpy(kb, key, keylen);
            memcpy(kb + keylen, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
            sha1(kb, keylen + 36, dig);
            size_t al = base64(dig, 20, acc);
            int n = snprintf(h, sizeof h,
                             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: %.*s\r\n\r\n", (int)al, acc);
            buf_put(&c->out, h, (size_t)n);
            c->is_ws = 1;
            ws_process(c);                                /* frames sent right behind */
        } else {
            http_respond(c, 404, "Not Found", "not found\n", 10, keep);
        }
    }
    if (c->in_off == c->in.len) c->in_off = c->in.len = 0;
}

/* ======================================================================= */
/* Event loop                                                               */
/* ======================================================================= */
static void conn_on_readable(conn *c) {
    if (c->in_off > 0 && c->in.cap - c->in.len < READ_CHUNK) {
        memmove(c->in.p, c->in.p + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in.cap - c->in.len < READ_CHUNK) buf_grow(&c->in, c->in.len + READ_CHUNK);
    ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        conn_close(c);
        return;
    }
    if (n == 0) {
        c->closing = 1;                                   /* send what is left, then close */
    } else {
        c->in.len += (size_t)n;
        if (c->is_ws) ws_process(c); else http_process(c);
    }
    if (conn_flush(c) < 0) conn_close(c);
}

static void on_term(int sig) { (void)sig; _exit(0); }

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
        else if (strncmp(argv[i], "--port=", 7) == 0) port = atoi(argv[i] + 7);
    }
    if (port == 0 && getenv("QC_PORT")) port = atoi(getenv("QC_PORT"));
    if (port == 0) port = 8080;
    if (port < 1 || port > 65535) { fprintf(stderr, "engine: bad port %d\n", port); return 2; }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    variant_startup(argv[0]);

    map_alloc(1u << 16);
    buf_grow(&g_fills, 4096);                 /* never NULL, even when empty */
    buf_grow(&g_rep, 4096);
    buf_grow(&g_tmp, 4096);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
#ifndef VARIANT_NAIVE_SERVER  /* a test's variant: binds as a naive server would */
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#else
    (void)one;
#endif
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 1024) < 0) {
        fprintf(stderr, "engine: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(g_ep, EPOLL_CTL_ADD, lfd, &ev);
#ifdef VARIANT_THREADED
    g_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event eev = { .events = EPOLLIN, .data.ptr = &g_evfd };
    pthread_t matcher;
    if (g_evfd < 0 || epoll_ctl(g_ep, EPOLL_CTL_ADD, g_evfd, &eev) < 0 ||
        (errno = pthread_create(&matcher, NULL, matcher_main, NULL)) != 0) {
        fprintf(stderr, "engine: cannot start the matching thread: %s\n", strerror(errno));
        return 1;
    }
#endif
    fprintf(stderr, "engine[%s]: listening on 127.0.0.1:%d\n", VARIANT_NAME, port);

    struct epoll_event evs[256];
    int64_t last_active = 0;
    for (;;) {
        /* Adaptive busy-poll: for SPIN_US after the last activity, poll
         * without sleeping (yielding the CPU to anyone else runnable); a
         * sleeping CPU costs tens of microseconds to wake up.               */
        int n = SPIN_US > 0 ? epoll_wait(g_ep, evs, 256, 0) : 0;
        if (n == 0) {
            if (mono_ns() - last_active < (int64_t)SPIN_US * 1000) { sched_yield(); continue; }
            n = epoll_wait(g_ep, evs, 256, -1);
        }
        if (n < 0 && errno != EINTR) { fprintf(stderr, "engine: epoll_wait: %s\n", strerror(errno)); return 1; }
        if (SPIN_US > 0 && n > 0) last_active = mono_ns();
        int reports = 0;
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
#ifdef VARIANT_THREADED
            if (evs[i].data.ptr == &g_evfd) { reports = 1; continue; }   /* after the others */
#endif
            if (!c) {                                     /* new connections */
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    if (!c) { close(fd); continue; }
                    c->fd = fd;
                    c->ev = EPOLLIN;
                    struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
                    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &e) < 0) { close(fd); free(c); }
                }
                continue;
            }
            uint32_t e = evs[i].events;
            if (e & EPOLLIN) conn_on_readable(c);          /* may free c */
            else if (e & EPOLLOUT) { if (conn_flush(c) < 0) conn_close(c); }
            else if (e & (EPOLLERR | EPOLLHUP)) conn_close(c);
        }
#ifdef VARIANT_THREADED
        submit_jobs();
        if (reports) deliver_reports();
#else
        (void)reports;
#endif
    }
}
