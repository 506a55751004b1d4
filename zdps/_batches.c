/* Batches at C speed: a batch is a msgpack array of bin payloads (docs/PROTOCOL.md).
 *
 * check: the entry node's test of a client's batch (zdps/wire/batches.py), without
 * making an object per payload. expand: the raw PUB's loop (zdps/daemon/expansion.py
 * has the pure-Python twin and says why), three frames per message: the topic, the
 * 29-byte header {"seq", "epoch"} and the payload.
 *
 * No libzmq headers are needed to build this: libzmq's zmq_send is called through the
 * address that expansion.py takes from the libzmq pyzmq already loaded, on the socket
 * address pyzmq gives (Socket.underlying), so both use one libzmq and one socket.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

typedef int (*zmq_send_fn)(void *socket, const void *buf, size_t len, int flags);
typedef int (*zmq_setsockopt_fn)(void *socket, int option, const void *value, size_t size);

#define DONTWAIT 1     /* ZMQ_DONTWAIT */
#define SNDMORE 2      /* ZMQ_SNDMORE */
#define XPUB_NODROP 69 /* ZMQ_XPUB_NODROP */
#define HEADER_SIZE 29
static const char SEQ_KEY[6] = {'\x82', '\xa3', 's', 'e', 'q', '\xcf'};
static const char EPOCH_KEY[7] = {'\xa5', 'e', 'p', 'o', 'c', 'h', '\xcf'};

static void put_be64(unsigned char *at, uint64_t value) {
    for (int i = 7; i >= 0; i--) {
        at[i] = (unsigned char)(value & 0xff);
        value >>= 8;
    }
}

static uint64_t get_be(const unsigned char *at, int width) {
    uint64_t value = 0;
    for (int i = 0; i < width; i++)
        value = (value << 8) | at[i];
    return value;
}

/* The payloads of `data`: the element count, and each one's offset and length in
 * `spans` (pairs); -1 with ValueError set unless it is an array of exactly `n` bins
 * that ends where `data` does. */
static Py_ssize_t parse(const unsigned char *data, Py_ssize_t size, Py_ssize_t n,
                        Py_ssize_t *spans) {
    Py_ssize_t at = 1, count;
    if (size < 1)
        goto bad;
    if ((data[0] & 0xf0) == 0x90) {
        count = data[0] & 0x0f;
    } else if (data[0] == 0xdc && size >= 3) {
        count = (Py_ssize_t)get_be(data + 1, 2);
        at = 3;
    } else if (data[0] == 0xdd && size >= 5) {
        count = (Py_ssize_t)get_be(data + 1, 4);
        at = 5;
    } else {
        goto bad;
    }
    if (count != n)
        goto bad;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (at >= size)
            goto bad;
        int width = data[at] == 0xc4 ? 1 : data[at] == 0xc5 ? 2 : data[at] == 0xc6 ? 4 : 0;
        if (width == 0 || at + 1 + width > size)
            goto bad;
        uint64_t length = get_be(data + at + 1, width);
        at += 1 + width;
        if (length > (uint64_t)(size - at))
            goto bad;
        spans[2 * i] = at;
        spans[2 * i + 1] = (Py_ssize_t)length;
        at += (Py_ssize_t)length;
    }
    if (at != size)
        goto bad;
    return count;
bad:
    PyErr_Format(PyExc_ValueError, "a batch of %zd is not an array of %zd bin payloads", n, n);
    return -1;
}

/* parse's spans in memory of their own (PyMem_Free them), or NULL with an error set. */
static Py_ssize_t *spans_of(const unsigned char *data, Py_ssize_t size, Py_ssize_t n) {
    if (n < 1 || n > 1 << 20) {
        PyErr_SetString(PyExc_ValueError, "a batch has 1 to 2**20 messages");
        return NULL;
    }
    Py_ssize_t *spans = PyMem_Malloc(sizeof(Py_ssize_t) * 2 * (size_t)n);
    if (spans == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    if (parse(data, size, n, spans) < 0) {
        PyMem_Free(spans);
        return NULL;
    }
    return spans;
}

static int send_frame(zmq_send_fn send, void *socket, const void *buf, size_t len, int flags) {
    while (send(socket, buf, len, flags) < 0) {
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    return 0;
}

/* The first frame of a message: 1 if some subscriber's queue was full (XPUB_NODROP
 * said EAGAIN), in which case it went in lossy mode, which drops it for that one only
 * (and leaves the socket lossy until the message is complete); 0 if sent; -1 error. */
static int send_first(zmq_send_fn send, zmq_setsockopt_fn setsockopt, void *socket,
                      const void *buf, size_t len) {
    int rc;
    do
        rc = send(socket, buf, len, SNDMORE | DONTWAIT);
    while (rc < 0 && errno == EINTR);
    if (rc >= 0)
        return 0;
    if (errno != EAGAIN) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int lossy = 0;
    if (setsockopt(socket, XPUB_NODROP, &lossy, sizeof lossy) < 0 ||
        send_frame(send, socket, buf, len, SNDMORE) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 1;
}

static int no_drop(zmq_setsockopt_fn setsockopt, void *socket) {
    int on = 1;
    if (setsockopt(socket, XPUB_NODROP, &on, sizeof on) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static PyObject *expand(PyObject *self, PyObject *args) {
    unsigned long long send_address, setsockopt_address, socket_address, seq, epoch;
    Py_buffer topic, batch;
    Py_ssize_t n, full = 0;
    if (!PyArg_ParseTuple(args, "KKKy*KKny*", &send_address, &setsockopt_address,
                          &socket_address, &topic, &seq, &epoch, &n, &batch))
        return NULL;
    PyObject *result = NULL;
    const unsigned char *data = batch.buf;
    Py_ssize_t *spans = spans_of(data, batch.len, n);
    if (spans == NULL)
        goto done; /* nothing sent: a bad batch is refused whole */
    zmq_send_fn send = (zmq_send_fn)(uintptr_t)send_address;
    zmq_setsockopt_fn setsockopt = (zmq_setsockopt_fn)(uintptr_t)setsockopt_address;
    void *socket = (void *)(uintptr_t)socket_address;
    unsigned char header[HEADER_SIZE];
    memcpy(header, SEQ_KEY, 6);
    memcpy(header + 14, EPOCH_KEY, 7);
    put_be64(header + 21, epoch);
    for (Py_ssize_t i = 0; i < n; i++) {
        put_be64(header + 6, seq + (uint64_t)i);
        int lossy = send_first(send, setsockopt, socket, topic.buf, (size_t)topic.len);
        if (lossy < 0 || send_frame(send, socket, header, HEADER_SIZE, SNDMORE) < 0 ||
            send_frame(send, socket, data + spans[2 * i], (size_t)spans[2 * i + 1], 0) < 0 ||
            (lossy && no_drop(setsockopt, socket) < 0))
            goto done;
        full += lossy;
    }
    result = PyLong_FromSsize_t(full);
done:
    PyMem_Free(spans);
    PyBuffer_Release(&topic);
    PyBuffer_Release(&batch);
    return result;
}

static PyObject *check(PyObject *self, PyObject *args) {
    Py_buffer batch;
    Py_ssize_t n, largest = 0;
    if (!PyArg_ParseTuple(args, "y*n", &batch, &n))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t *spans = spans_of(batch.buf, batch.len, n);
    if (spans == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++)
        if (spans[2 * i + 1] > largest)
            largest = spans[2 * i + 1];
    result = PyLong_FromSsize_t(largest);
done:
    PyMem_Free(spans);
    PyBuffer_Release(&batch);
    return result;
}

static PyMethodDef methods[] = {
    {"check", check, METH_VARARGS,
     "check(batch, n) -> int: the size of the largest payload; ValueError if the batch "
     "is not an array of n bin payloads."},
    {"expand", expand, METH_VARARGS,
     "expand(zmq_send_address, zmq_setsockopt_address, socket_address, topic_frame, seq, "
     "epoch, n, batch) -> int: send each of the batch's n payloads as topic, header, "
     "payload on an XPUB set to XPUB_NODROP; returns how many found a subscriber's queue "
     "full (lost for that subscriber). ValueError (nothing sent) for a batch that is not "
     "an array of n bin payloads."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batches", NULL, -1, methods};

PyMODINIT_FUNC PyInit__batches(void) { return PyModule_Create(&module); }
