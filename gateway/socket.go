package gateway

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The buffers the WebSocket library reads and writes through. net/http hands a hijacked
// connection two 4 KiB bufio buffers that the library would keep for the connection's
// life: 8 KiB per idle viewer. We hand it small ones instead (upgrader.Hijack) and
// coalesce writes in a pooled buffer held only while the writer has data (socketWriter).
const (
	// readBufSize is the library's read buffer. A client's commands and pongs are a
	// few hundred bytes at most; a larger frame costs one more read, its payload going
	// straight into the message (bufio does not copy reads larger than its buffer).
	readBufSize = 256
	// frameBufSize is the library's write buffer: room for the largest frame header
	// (14 bytes). Everything else passes through to socketWriter.
	frameBufSize = 16
	// batchBytes is the most a batch holds before it is written out mid-batch; a write
	// at least this large goes to the socket without a copy.
	batchBytes = 32 << 10
)

// batchPool holds the buffers of batches in progress.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// upgrader wraps the upgrade's ResponseWriter so that websocket.Accept, which finds
// the Hijacker through it, gets the small buffers above.
type upgrader struct {
	http.ResponseWriter
	out *socketWriter // set by Hijack
}

// Hijack hijacks the connection and replaces net/http's buffers. The read buffer is
// kept only if the client already sent bytes after its upgrade request (they are in
// it); browsers wait for the 101 first.
func (u *upgrader) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	br := brw.Reader
	if br.Buffered() == 0 {
		br = bufio.NewReaderSize(nc, readBufSize)
	}
	u.out = &socketWriter{conn: nc, raw: rawConn(nc)}
	return nc, bufio.NewReadWriter(br, bufio.NewWriterSize(u.out, frameBufSize)), nil
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (u *upgrader) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// socketWriter is the only thing that writes to a connection's socket. The library
// writes every frame through it, from the connection's writer (data, pings, the close
// frame) or from the reader (pongs, the close reply).
//
// Outside a batch a write goes straight to the socket. Between begin and end (the
// writer draining its queue) writes are collected in a pooled buffer and end writes
// them with one syscall, then gives the buffer back: an idle connection holds none.
// Every socket write, whoever makes it, is timed in writing, which the watchdog reads:
// a write stuck for longer than WriteTimeout gets the connection closed.
//
// A pool worker (writerpool.go) batches with tryBegin and tryEnd instead, which never
// wait: the batch is not written out midway, and tryEnd writes what the socket takes
// now and keeps the rest for end.
type socketWriter struct {
	conn net.Conn
	raw  syscall.RawConn // nil unless conn is a plain socket: no non-blocking writes

	// writing is the unix nano time the socket write in progress began, 0 between
	// writes. Set under mu, read by the watchdog.
	writing atomic.Int64

	mu    sync.Mutex // guards buf and whole; held across socket writes, which it serializes
	buf   *[]byte    // from batchPool; nil outside a batch
	whole bool       // the batch is written at its end only (tryBegin)
}

// begin starts a batch.
func (w *socketWriter) begin() {
	w.mu.Lock()
	w.buf = batchPool.Get().(*[]byte)
	w.mu.Unlock()
}

// tryBegin starts a batch that is written out only at its end, unless a write holds
// the socket (or the socket is not one tryEnd can write): then it reports false.
func (w *socketWriter) tryBegin() bool {
	if w.raw == nil || !w.mu.TryLock() {
		return false
	}
	w.buf = batchPool.Get().(*[]byte)
	w.whole = true
	w.mu.Unlock()
	return true
}

// end writes the batch out and releases its buffer.
func (w *socketWriter) end() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.flushLocked()
	w.releaseLocked()
	return err
}

// tryEnd writes the batch out as far as the socket takes it without waiting. Done, the
// buffer is released; otherwise the rest stays in the batch, for end.
func (w *socketWriter) tryEnd() (done bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := *w.buf
	w.writing.Store(time.Now().UnixNano())
	n, err := tryWrite(w.raw, b)
	w.writing.Store(0)
	if err != nil || n == len(b) {
		w.releaseLocked()
		return true, err
	}
	*w.buf = b[:copy(b, b[n:])]
	return false, nil
}

// drop releases the batch unwritten.
func (w *socketWriter) drop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.releaseLocked()
}

func (w *socketWriter) releaseLocked() {
	if cap(*w.buf) <= batchBytes*2 {
		*w.buf = (*w.buf)[:0]
		batchPool.Put(w.buf)
	}
	w.buf, w.whole = nil, false
}

func (w *socketWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf == nil {
		return w.writeLocked(p)
	}
	if !w.whole && len(*w.buf)+len(p) > batchBytes {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= batchBytes {
			return w.writeLocked(p)
		}
	}
	*w.buf = append(*w.buf, p...)
	return len(p), nil
}

func (w *socketWriter) flushLocked() error {
	b := *w.buf
	*w.buf = b[:0]
	if len(b) == 0 {
		return nil
	}
	_, err := w.writeLocked(b)
	return err
}

func (w *socketWriter) writeLocked(p []byte) (int, error) {
	w.writing.Store(time.Now().UnixNano())
	n, err := w.conn.Write(p)
	w.writing.Store(0)
	return n, err
}
