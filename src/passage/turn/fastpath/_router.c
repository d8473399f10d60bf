/* The TURN hot path in C: ChannelData between UDP clients and UDP peers (RFC 8656 §12).
 *
 * A Router reads the sockets it watches in batches (recvmmsg), forwards every
 * ChannelData message on a route it holds, and hands everything else, unchanged
 * and in order, to the socket's Python handler (the protocol's datagram_received).
 * Its routes are what passage.turn.aio.fast_path installs from allocation.routes:
 * a channel whose binding and permission are alive. Two entries per route:
 *
 *   client side: (listening socket, client address, channel) -> relay socket, peer
 *   peer side:   (relay socket, peer address)                 -> listening socket, client
 *
 * Client -> peer: the 4-byte header is stripped and the data sent from the relay
 * socket (RFC 8656 §12.6). Peer -> client: a header is put in front and the message
 * sent from the listening socket (§12.7), several at once with sendmmsg. Bytes and
 * packets are counted per meter slot (one per allocation), and read back with
 * take_meters() before every usage collection, so the ledger stays exact.
 *
 * Nothing here decides policy: no permission, expiry or budget check happens per
 * packet, exactly as in the Python hot path, because a route exists only while
 * both its binding and its permission are alive (the adapter removes it at expiry).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 32          /* datagrams read (and sent) per system call */
#define BUFFER_SIZE 65536 /* larger than any UDP payload */
#define ROUNDS 8          /* full batches read per wake-up at most, then back to the loop */

enum kind { LISTENER = 0, RELAY = 1 };

typedef struct {
    int32_t fd;       /* the socket the packet arrives on */
    uint16_t channel; /* host order; 0 for the peer side */
    uint16_t port;    /* network order */
    uint8_t ip[16];   /* IPv4 written IPv4-mapped */
} route_key;

typedef struct {
    route_key key;
    int used;
    int out_fd;
    uint16_t channel; /* peer side: the channel number to put in the header */
    uint32_t slot;
    struct sockaddr_storage dest;
    socklen_t dest_len;
} entry;

typedef struct {
    PyObject *fallback; /* datagram_received(data, addr), or NULL: not watched */
    int kind;
    int ipv6;
} watch;

typedef struct {
    int fd;
    uint32_t slot;
    int to_peer;
    uint32_t size;
    uint8_t header[4];
    const struct sockaddr_storage *dest;
    socklen_t dest_len;
    const uint8_t *data;
} outgoing;

typedef struct {
    PyObject_HEAD
    entry *table;
    size_t capacity; /* a power of two */
    size_t count;
    watch *watches;
    size_t watch_capacity;
    uint64_t (*meters)[4]; /* per slot: bytes to peer, packets to peer, bytes and packets from */
    size_t meter_capacity;
    uint8_t *buffers;
    struct mmsghdr in[BATCH];
    struct iovec in_iov[BATCH];
    struct sockaddr_storage names[BATCH];
    outgoing out[BATCH];
    size_t out_count;
    struct mmsghdr out_msgs[BATCH];
    struct iovec out_iov[BATCH][2];
    uint64_t relayed_to_peer;
    uint64_t relayed_from_peer;
    uint64_t send_errors;
    uint64_t handed_up;
    int busy;
} Router;

/* -- the route table: open addressing, linear probing, backward-shift deletion ---------- */

static size_t key_hash(const route_key *key) {
    uint64_t words[3];
    memcpy(words, key, sizeof(words));
    uint64_t h = words[0] * 0x9E3779B97F4A7C15ull;
    h ^= words[1] + 0x632BE59BD9B4E019ull + (h << 6) + (h >> 2);
    h ^= words[2] + 0x8CB92BA72F3D8DD7ull + (h << 6) + (h >> 2);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (size_t)(h ^ (h >> 32));
}

static entry *table_find(Router *self, const route_key *key) {
    size_t mask = self->capacity - 1;
    for (size_t i = key_hash(key) & mask;; i = (i + 1) & mask) {
        entry *e = &self->table[i];
        if (!e->used)
            return NULL;
        if (memcmp(&e->key, key, sizeof(route_key)) == 0)
            return e;
    }
}

static int table_grow(Router *self) {
    size_t old_capacity = self->capacity;
    entry *old = self->table;
    entry *table = PyMem_Calloc(old_capacity * 2, sizeof(entry));
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->table = table;
    self->capacity = old_capacity * 2;
    size_t mask = self->capacity - 1;
    for (size_t j = 0; j < old_capacity; j++) {
        if (!old[j].used)
            continue;
        size_t i = key_hash(&old[j].key) & mask;
        while (table[i].used)
            i = (i + 1) & mask;
        table[i] = old[j];
    }
    PyMem_Free(old);
    return 0;
}

/* The entry for key, made empty-but-used if it is new; NULL with an exception set. */
static entry *table_put(Router *self, const route_key *key) {
    if ((self->count + 1) * 2 > self->capacity && table_grow(self) < 0)
        return NULL;
    size_t mask = self->capacity - 1;
    size_t i = key_hash(key) & mask;
    for (;; i = (i + 1) & mask) {
        entry *e = &self->table[i];
        if (!e->used)
            break;
        if (memcmp(&e->key, key, sizeof(route_key)) == 0)
            return e;
    }
    entry *e = &self->table[i];
    memset(e, 0, sizeof(entry));
    e->key = *key;
    e->used = 1;
    self->count++;
    return e;
}

static void table_delete(Router *self, entry *e) {
    size_t mask = self->capacity - 1;
    size_t hole = (size_t)(e - self->table);
    self->table[hole].used = 0;
    self->count--;
    for (size_t i = (hole + 1) & mask; self->table[i].used; i = (i + 1) & mask) {
        size_t home = key_hash(&self->table[i].key) & mask;
        /* move the entry into the hole unless its home lies cyclically in (hole, i] */
        int stays = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
        if (stays)
            continue;
        self->table[hole] = self->table[i];
        self->table[i].used = 0;
        hole = i;
    }
}

/* -- addresses ------------------------------------------------------------------------ */

/* (ip, port) from Python into a key's ip and port and a sockaddr; -1 with ValueError. */
/* A descriptor from Python: an int from 0 to INT_MAX, else -1 with an exception set. */
static int as_fd(PyObject *arg) {
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return -1;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "not a file descriptor");
        return -1;
    }
    return (int)fd;
}

static int parse_address(PyObject *address, uint8_t ip[16], uint16_t *port,
                         struct sockaddr_storage *sa, socklen_t *sa_len) {
    const char *host;
    int number;
    if (!PyArg_ParseTuple(address, "si", &host, &number))
        return -1;
    if (number < 0 || number > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1) {
        memset(ip, 0, 10);
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, &v4, 4);
        struct sockaddr_in *sin = (struct sockaddr_in *)sa;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)number);
        sin->sin_addr = v4;
        *sa_len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &v6) == 1) {
        memcpy(ip, &v6, 16);
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)number);
        sin6->sin6_addr = v6;
        *sa_len = sizeof(*sin6);
    } else {
        PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
        return -1;
    }
    *port = htons((uint16_t)number);
    return 0;
}

/* A received sockaddr into a key's ip and port. */
static void key_address(const struct sockaddr_storage *sa, route_key *key) {
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        memset(key->ip, 0, 10);
        key->ip[10] = key->ip[11] = 0xff;
        memcpy(key->ip + 12, &sin->sin_addr, 4);
        key->port = sin->sin_port;
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        memcpy(key->ip, &sin6->sin6_addr, 16);
        key->port = sin6->sin6_port;
    }
}

/* The address tuple asyncio would give datagram_received: (host, port) or, for IPv6,
 * (host, port, flowinfo, scope_id). */
static PyObject *address_tuple(const struct sockaddr_storage *sa) {
    char text[INET6_ADDRSTRLEN];
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        return Py_BuildValue("(si)", text, ntohs(sin->sin_port));
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
    return Py_BuildValue("(siII)", text, ntohs(sin6->sin6_port), ntohl(sin6->sin6_flowinfo),
                         sin6->sin6_scope_id);
}

/* -- sending ------------------------------------------------------------------------- */

static void count_sent(Router *self, const outgoing *o) {
    uint64_t *meter = self->meters[o->slot];
    if (o->to_peer) {
        meter[0] += o->size;
        meter[1] += 1;
        self->relayed_to_peer++;
    } else {
        meter[2] += o->size;
        meter[3] += 1;
        self->relayed_from_peer++;
    }
}

/* Send what the batch forwarded: one sendmmsg per run of messages leaving one socket.
 * A message the kernel refuses is counted in send_errors and not metered. */
static void flush(Router *self) {
    size_t start = 0;
    while (start < self->out_count) {
        size_t end = start + 1;
        while (end < self->out_count && self->out[end].fd == self->out[start].fd)
            end++;
        for (size_t i = start; i < end; i++) {
            outgoing *o = &self->out[i];
            struct msghdr *h = &self->out_msgs[i].msg_hdr;
            memset(h, 0, sizeof(*h));
            h->msg_name = (void *)o->dest;
            h->msg_namelen = o->dest_len;
            if (o->to_peer) {
                self->out_iov[i][0].iov_base = (void *)o->data;
                self->out_iov[i][0].iov_len = o->size;
                h->msg_iovlen = 1;
            } else {
                self->out_iov[i][0].iov_base = o->header;
                self->out_iov[i][0].iov_len = 4;
                self->out_iov[i][1].iov_base = (void *)o->data;
                self->out_iov[i][1].iov_len = o->size;
                h->msg_iovlen = 2;
            }
            h->msg_iov = self->out_iov[i];
        }
        size_t next = start;
        while (next < end) {
            int sent = sendmmsg(self->out[start].fd, &self->out_msgs[next],
                                (unsigned int)(end - next), MSG_DONTWAIT);
            if (sent > 0) {
                for (size_t i = next; i < next + (size_t)sent; i++)
                    count_sent(self, &self->out[i]);
                next += (size_t)sent;
            } else if (sent < 0 && errno == EINTR) {
                continue;
            } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                self->send_errors += end - next; /* the socket's buffer is full */
                next = end;
            } else {
                self->send_errors += 1; /* this one message failed (EMSGSIZE, ENETUNREACH) */
                next += 1;
            }
        }
        start = end;
    }
    self->out_count = 0;
}

/* -- reading ------------------------------------------------------------------------- */

/* Queue the datagram for sending if a route takes it; 0 if Python must see it. */
static int forward(Router *self, int fd, int kind, const uint8_t *data, size_t length,
                   const struct sockaddr_storage *from) {
    route_key key;
    memset(&key, 0, sizeof(key));
    key.fd = fd;
    key_address(from, &key);
    outgoing *o = &self->out[self->out_count];
    if (kind == LISTENER) {
        if (length < 4 || data[0] < 0x40 || data[0] > 0x7F)
            return 0;
        uint32_t size = ((uint32_t)data[2] << 8) | data[3];
        if (size > length - 4)
            return 0; /* Python counts it malformed */
        key.channel = (uint16_t)(((uint32_t)data[0] << 8) | data[1]);
        entry *e = table_find(self, &key);
        if (e == NULL)
            return 0;
        o->to_peer = 1;
        o->data = data + 4;
        o->size = size;
        o->fd = e->out_fd;
        o->slot = e->slot;
        o->dest = &e->dest;
        o->dest_len = e->dest_len;
    } else {
        if (length > 0xFFFF)
            return 0;
        entry *e = table_find(self, &key);
        if (e == NULL)
            return 0;
        o->to_peer = 0;
        o->data = data;
        o->size = (uint32_t)length;
        o->header[0] = (uint8_t)(e->channel >> 8);
        o->header[1] = (uint8_t)e->channel;
        o->header[2] = (uint8_t)(length >> 8);
        o->header[3] = (uint8_t)length;
        o->fd = e->out_fd;
        o->slot = e->slot;
        o->dest = &e->dest;
        o->dest_len = e->dest_len;
    }
    self->out_count++;
    return 1;
}

/* The first exception a handler raised in one read(), raised again once the batch is done. */
typedef struct {
    PyObject *type, *value, *traceback;
} kept_error;

/* Hand one datagram to Python; the first exception is kept in *error. */
static void hand_up(Router *self, PyObject *fallback, const uint8_t *data, size_t length,
                    const struct sockaddr_storage *from, kept_error *error) {
    self->handed_up++;
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)length);
    PyObject *address = bytes != NULL ? address_tuple(from) : NULL;
    PyObject *result = NULL;
    if (address != NULL)
        result = PyObject_CallFunctionObjArgs(fallback, bytes, address, NULL);
    Py_XDECREF(bytes);
    Py_XDECREF(address);
    if (result != NULL) {
        Py_DECREF(result);
        return;
    }
    if (error->type == NULL)
        PyErr_Fetch(&error->type, &error->value, &error->traceback);
    else
        PyErr_Clear();
}

static PyObject *Router_read(Router *self, PyObject *arg) {
    int fd = as_fd(arg);
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= self->watch_capacity || self->watches[fd].fallback == NULL ||
        self->busy)
        Py_RETURN_NONE;
    self->busy = 1;
    PyObject *fallback = self->watches[fd].fallback;
    Py_INCREF(fallback);
    int kind = self->watches[fd].kind;
    kept_error error = {NULL, NULL, NULL};
    int watched = 1;
    for (int round = 0; round < ROUNDS && watched; round++) {
        for (int i = 0; i < BATCH; i++) {
            self->in_iov[i].iov_base = self->buffers + (size_t)i * BUFFER_SIZE;
            self->in_iov[i].iov_len = BUFFER_SIZE;
            struct msghdr *h = &self->in[i].msg_hdr;
            memset(h, 0, sizeof(*h));
            h->msg_name = &self->names[i];
            h->msg_namelen = sizeof(self->names[i]);
            h->msg_iov = &self->in_iov[i];
            h->msg_iovlen = 1;
        }
        int received = recvmmsg(fd, self->in, BATCH, MSG_DONTWAIT, NULL);
        if (received <= 0)
            break; /* EAGAIN: all read; other errors (ICMP) mean nothing to a relay */
        for (int i = 0; i < received; i++) {
            const uint8_t *data = self->buffers + (size_t)i * BUFFER_SIZE;
            size_t length = self->in[i].msg_len;
            if (forward(self, fd, kind, data, length, &self->names[i]))
                continue;
            flush(self); /* what went before goes first */
            hand_up(self, fallback, data, length, &self->names[i], &error);
            if ((size_t)fd >= self->watch_capacity || self->watches[fd].fallback != fallback) {
                watched = 0; /* the handler closed the socket */
                break;
            }
        }
        flush(self);
        if (received < BATCH)
            break;
    }
    self->busy = 0;
    Py_DECREF(fallback);
    if (error.type != NULL) {
        PyErr_Restore(error.type, error.value, error.traceback);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* -- the Python interface ------------------------------------------------------------ */

static int ensure_slot(Router *self, size_t slot) {
    if (slot < self->meter_capacity)
        return 0;
    size_t capacity = self->meter_capacity ? self->meter_capacity : 64;
    while (capacity <= slot)
        capacity *= 2;
    void *meters = PyMem_Realloc(self->meters, capacity * sizeof(self->meters[0]));
    if (meters == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->meters = meters;
    memset(self->meters + self->meter_capacity, 0,
           (capacity - self->meter_capacity) * sizeof(self->meters[0]));
    self->meter_capacity = capacity;
    return 0;
}

typedef struct {
    route_key client_side, peer_side;
    struct sockaddr_storage client, peer;
    socklen_t client_len, peer_len;
} route_keys;

static int parse_route(PyObject *args, unsigned int *slot, int *listen_fd, int *relay_fd,
                       int *channel, route_keys *keys) {
    PyObject *client, *peer;
    if (!PyArg_ParseTuple(args, "IiO!iO!i", slot, listen_fd, &PyTuple_Type, &client, relay_fd,
                          &PyTuple_Type, &peer, channel))
        return -1;
    if (*channel < 0x4000 || *channel > 0x7FFF || *listen_fd < 0 || *relay_fd < 0) {
        PyErr_SetString(PyExc_ValueError, "channel or descriptor out of range");
        return -1;
    }
    memset(keys, 0, sizeof(*keys));
    keys->client_side.fd = *listen_fd;
    keys->client_side.channel = (uint16_t)*channel;
    keys->peer_side.fd = *relay_fd;
    if (parse_address(client, keys->client_side.ip, &keys->client_side.port, &keys->client,
                      &keys->client_len) < 0 ||
        parse_address(peer, keys->peer_side.ip, &keys->peer_side.port, &keys->peer,
                      &keys->peer_len) < 0)
        return -1;
    return 0;
}

PyDoc_STRVAR(add_doc, "add(slot, listen_fd, client, relay_fd, peer, channel)\n--\n\n"
                      "Relay ChannelData of channel between client (at listen_fd) and peer (at "
                      "relay_fd) in both directions, metered in slot. Replaces an older route "
                      "with the same ends.");

static PyObject *Router_add(Router *self, PyObject *args) {
    unsigned int slot;
    int listen_fd, relay_fd, channel;
    route_keys keys;
    if (parse_route(args, &slot, &listen_fd, &relay_fd, &channel, &keys) < 0)
        return NULL;
    if (ensure_slot(self, slot) < 0)
        return NULL;
    entry *e = table_put(self, &keys.client_side);
    if (e == NULL)
        return NULL;
    e->out_fd = relay_fd;
    e->slot = slot;
    e->dest = keys.peer;
    e->dest_len = keys.peer_len;
    e = table_put(self, &keys.peer_side);
    if (e == NULL)
        return NULL;
    e->out_fd = listen_fd;
    e->slot = slot;
    e->channel = (uint16_t)channel;
    e->dest = keys.client;
    e->dest_len = keys.client_len;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(remove_doc, "remove(slot, listen_fd, client, relay_fd, peer, channel)\n--\n\n"
                         "Stop relaying what add() with the same arguments started.");

static PyObject *Router_remove(Router *self, PyObject *args) {
    unsigned int slot;
    int listen_fd, relay_fd, channel;
    route_keys keys;
    if (parse_route(args, &slot, &listen_fd, &relay_fd, &channel, &keys) < 0)
        return NULL;
    entry *e = table_find(self, &keys.client_side);
    if (e != NULL)
        table_delete(self, e);
    e = table_find(self, &keys.peer_side);
    if (e != NULL && e->channel == channel && e->out_fd == listen_fd)
        table_delete(self, e);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(watch_doc, "watch(fd, relay, datagram_received)\n--\n\n"
                        "Read fd in read(); what no route takes goes to datagram_received(data, "
                        "addr). relay: fd is a relay socket (else a listening socket).");

static PyObject *Router_watch(Router *self, PyObject *args) {
    int fd, relay;
    PyObject *fallback;
    if (!PyArg_ParseTuple(args, "ipO", &fd, &relay, &fallback))
        return NULL;
    if (fd < 0 || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_ValueError, "a descriptor and a callable are needed");
        return NULL;
    }
    if ((size_t)fd >= self->watch_capacity) {
        size_t capacity = self->watch_capacity ? self->watch_capacity : 1024;
        while (capacity <= (size_t)fd)
            capacity *= 2;
        watch *watches = PyMem_Realloc(self->watches, capacity * sizeof(watch));
        if (watches == NULL)
            return PyErr_NoMemory();
        memset(watches + self->watch_capacity, 0, (capacity - self->watch_capacity) * sizeof(watch));
        self->watches = watches;
        self->watch_capacity = capacity;
    }
    Py_INCREF(fallback);
    Py_XSETREF(self->watches[fd].fallback, fallback);
    self->watches[fd].kind = relay ? RELAY : LISTENER;
    Py_RETURN_NONE;
}

/* Remove every route leaving or reaching fd: a closed socket's number may come back. */
static void forget_fd(Router *self, int fd) {
    for (size_t i = 0; i < self->capacity;) {
        entry *e = &self->table[i];
        if (e->used && (e->key.fd == fd || e->out_fd == fd))
            table_delete(self, e); /* the slot may now hold a moved entry: look again */
        else
            i++;
    }
}

PyDoc_STRVAR(unwatch_doc, "unwatch(fd)\n--\n\nStop reading fd and forget its routes.");

static PyObject *Router_unwatch(Router *self, PyObject *arg) {
    int fd = as_fd(arg);
    if (fd < 0)
        return NULL;
    if ((size_t)fd < self->watch_capacity)
        Py_CLEAR(self->watches[fd].fallback);
    forget_fd(self, fd);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(take_meters_doc,
             "take_meters()\n--\n\nWhat was relayed since the last call: a list of (slot, "
             "bytes_to_peer, packets_to_peer, bytes_from_peer, packets_from_peer), one per slot "
             "that relayed anything. The meters start again from zero.");

static PyObject *Router_take_meters(Router *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *taken = PyList_New(0);
    if (taken == NULL)
        return NULL;
    for (size_t slot = 0; slot < self->meter_capacity; slot++) {
        uint64_t *m = self->meters[slot];
        if (!(m[1] | m[3]))
            continue;
        PyObject *row = Py_BuildValue("(nKKKK)", (Py_ssize_t)slot, (unsigned long long)m[0],
                                      (unsigned long long)m[1], (unsigned long long)m[2],
                                      (unsigned long long)m[3]);
        if (row == NULL || PyList_Append(taken, row) < 0) {
            Py_XDECREF(row);
            Py_DECREF(taken);
            return NULL;
        }
        Py_DECREF(row);
        memset(m, 0, sizeof(self->meters[0]));
    }
    return taken;
}

PyDoc_STRVAR(take_meter_doc,
             "take_meter(slot)\n--\n\nWhat slot relayed since its meters were last taken: "
             "(bytes_to_peer, packets_to_peer, bytes_from_peer, packets_from_peer), then zero.");

static PyObject *Router_take_meter(Router *self, PyObject *arg) {
    Py_ssize_t slot = PyLong_AsSsize_t(arg);
    if (slot == -1 && PyErr_Occurred())
        return NULL;
    if (slot < 0 || (size_t)slot >= self->meter_capacity)
        return Py_BuildValue("(iiii)", 0, 0, 0, 0);
    uint64_t *m = self->meters[slot];
    PyObject *taken = Py_BuildValue("(KKKK)", (unsigned long long)m[0], (unsigned long long)m[1],
                                    (unsigned long long)m[2], (unsigned long long)m[3]);
    if (taken != NULL)
        memset(m, 0, sizeof(self->meters[0]));
    return taken;
}

PyDoc_STRVAR(counters_doc, "counters()\n--\n\n(relayed to peers, relayed from peers, send "
                           "errors, datagrams handed to Python) since the router was made.");

static PyObject *Router_counters(Router *self, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("(KKKK)", (unsigned long long)self->relayed_to_peer,
                         (unsigned long long)self->relayed_from_peer,
                         (unsigned long long)self->send_errors,
                         (unsigned long long)self->handed_up);
}

static PyObject *Router_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Router() takes no arguments");
        return NULL;
    }
    Router *self = (Router *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->capacity = 64;
    self->table = PyMem_Calloc(self->capacity, sizeof(entry));
    self->buffers = PyMem_Malloc((size_t)BATCH * BUFFER_SIZE);
    if (self->table == NULL || self->buffers == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static int Router_traverse(Router *self, visitproc visit, void *arg) {
    for (size_t fd = 0; fd < self->watch_capacity; fd++)
        Py_VISIT(self->watches[fd].fallback);
    return 0;
}

static int Router_clear(Router *self) {
    for (size_t fd = 0; fd < self->watch_capacity; fd++)
        Py_CLEAR(self->watches[fd].fallback);
    return 0;
}

static void Router_dealloc(Router *self) {
    PyObject_GC_UnTrack(self);
    Router_clear(self);
    PyMem_Free(self->table);
    PyMem_Free(self->watches);
    PyMem_Free(self->meters);
    PyMem_Free(self->buffers);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t Router_len(Router *self) { return (Py_ssize_t)self->count; }

static PyMethodDef Router_methods[] = {
    {"read", (PyCFunction)Router_read, METH_O,
     "read(fd)\n--\n\nRead what fd holds (loop.add_reader's callback): relay what the routes "
     "take, hand the rest to the fd's handler in order."},
    {"add", (PyCFunction)Router_add, METH_VARARGS, add_doc},
    {"remove", (PyCFunction)Router_remove, METH_VARARGS, remove_doc},
    {"watch", (PyCFunction)Router_watch, METH_VARARGS, watch_doc},
    {"unwatch", (PyCFunction)Router_unwatch, METH_O, unwatch_doc},
    {"take_meters", (PyCFunction)Router_take_meters, METH_NOARGS, take_meters_doc},
    {"take_meter", (PyCFunction)Router_take_meter, METH_O, take_meter_doc},
    {"counters", (PyCFunction)Router_counters, METH_NOARGS, counters_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Router_as_sequence = {.sq_length = (lenfunc)Router_len};

static PyTypeObject RouterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "passage.turn.fastpath._router.Router",
    .tp_basicsize = sizeof(Router),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Routes of UDP ChannelData, relayed in C; len() is the number of table entries "
              "(two per route).",
    .tp_new = Router_new,
    .tp_dealloc = (destructor)Router_dealloc,
    .tp_traverse = (traverseproc)Router_traverse,
    .tp_clear = (inquiry)Router_clear,
    .tp_methods = Router_methods,
    .tp_as_sequence = &Router_as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "passage.turn.fastpath._router",
    .m_doc = "ChannelData between UDP clients and UDP peers, relayed in C (RFC 8656 §12).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__router(void) {
    if (PyType_Ready(&RouterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&RouterType);
    if (PyModule_AddObject(m, "Router", (PyObject *)&RouterType) < 0) {
        Py_DECREF(&RouterType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "BATCH", BATCH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
