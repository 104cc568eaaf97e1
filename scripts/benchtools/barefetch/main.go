// Command barefetch is the floor of scripts/bench.sh's small-file benchmark:
// the least a Go client does per file while taking every durability step
// ckfetch takes, so that the benchmark shows what ckfetch's own layers cost
// (its scheduler, echo, retries, connection pool, timeouts) apart from what
// Go, the response parser and the durability itself cost.
//
//	barefetch -j N -d DIR < URLS
//
// N goroutines take the URLs in turn; each keeps one HTTP/1.1 connection per
// host:port it has met, writes the GET's bytes itself and reads the answer
// with download.ReadResponse, as ckfetch's lean client does (the common
// head parsed in one pass, any other by http.ReadResponse). Each body
// becomes DIR/HOST:PORT/PATH, where ckfetch's default layout puts it (so the
// kernel walks paths as deep), made as ckfetch makes a small file: a look at
// the final name (a file already there is kept) unless its directory was
// made by this run (ckfetch's linkat then finds a file there; barefetch's
// lists have no duplicates), an unnamed O_TMPFILE in its
// directory, the body, the owner's URL as an extended attribute, fsync,
// linkat (which never replaces a file), close, and the directory's fsync.
// A directory is made (and its parent fsynced) the first time a worker
// needs it. No retries, no redirects, no ordering, no echo: any
// answer but a whole 200 is an error that stops it (exit 1), as is any
// local error; the benchmark checks the files it leaves.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ck-tools/ck/lib/download"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stderr))
}

func run(args []string, stdin io.Reader, stderr io.Writer) int {
	fs := flag.NewFlagSet("barefetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	jobs := fs.Int("j", 16, "downloads at once")
	dir := fs.String("d", ".", "output directory (must exist)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *jobs < 1 {
		fmt.Fprintln(stderr, "usage: barefetch -j N -d DIR < URLS")
		return 2
	}
	if st, err := os.Stat(*dir); err != nil {
		fmt.Fprintln(stderr, "barefetch:", err)
		return 2
	} else if !st.IsDir() {
		fmt.Fprintf(stderr, "barefetch: %s is not a directory\n", *dir)
		return 2
	}
	urls := make(chan string, 1024)
	go func() {
		defer close(urls)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			if line := sc.Text(); line != "" {
				urls <- line
			}
		}
	}()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		failure error
	)
	for range *jobs {
		wg.Go(func() {
			w := &worker{root: *dir, conns: map[string]*conn{}, dirs: map[string]int{}}
			defer w.close()
			for raw := range urls {
				if err := w.fetch(raw); err != nil {
					mu.Lock()
					if failure == nil {
						failure = fmt.Errorf("%s: %w", raw, err)
					}
					mu.Unlock()
					for range urls { // drain: the feeder must not block
					}
					return
				}
			}
		})
	}
	wg.Wait()
	if failure != nil {
		fmt.Fprintln(stderr, "barefetch:", failure)
		return 1
	}
	return 0
}

type conn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

type worker struct {
	root  string
	conns map[string]*conn // by host:port
	dirs  map[string]int   // directories made or found, and their descriptors
	body  bytes.Buffer
}

func (w *worker) close() {
	for _, c := range w.conns {
		c.nc.Close()
	}
	for _, fd := range w.dirs {
		unix.Close(fd)
	}
}

// made holds the directories this run made: in them no final name is
// looked at before the request, as in ckfetch.
var made sync.Map

// dir returns a descriptor of dir, made first if missing (its parent then
// fsynced, as ckfetch does for the directories it makes).
func (w *worker) dir(dir string) (int, error) {
	if fd, ok := w.dirs[dir]; ok {
		return fd, nil
	}
	err := unix.Mkdir(dir, 0o777)
	if err == unix.ENOENT {
		if _, err := w.dir(filepath.Dir(dir)); err != nil {
			return -1, err
		}
		err = unix.Mkdir(dir, 0o777)
	}
	switch err {
	case nil:
		made.Store(dir, true)
	case unix.EEXIST:
	default:
		return -1, fmt.Errorf("mkdir %s: %w", dir, err)
	}
	if pfd, ok := w.dirs[filepath.Dir(dir)]; ok {
		if err := unix.Fsync(pfd); err != nil {
			return -1, err
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", dir, err)
	}
	w.dirs[dir] = fd
	return fd, nil
}

func (w *worker) fetch(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("not an http URL: %v", err)
	}
	final := filepath.Join(w.root, u.Host, filepath.FromSlash(path.Clean("/"+u.Path)))
	if _, fresh := made.Load(filepath.Dir(final)); !fresh {
		var st unix.Stat_t
		if err := unix.Stat(final, &st); err == nil {
			return nil // there already: kept, as ckfetch keeps it
		} else if err != unix.ENOENT {
			return err
		}
	}
	if err := w.get(u); err != nil {
		return err
	}
	return w.store(final, raw)
}

// get reads the body of u into w.body.
func (w *worker) get(u *url.URL) error {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	c := w.conns[addr]
	if c == nil {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c = &conn{nc: nc, br: bufio.NewReaderSize(nc, 32<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
		w.conns[addr] = c
	}
	req := &http.Request{Method: http.MethodGet, URL: u}
	c.bw.WriteString("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: barefetch\r\nAccept-Encoding: identity\r\n\r\n")
	if err := c.bw.Flush(); err != nil {
		return err
	}
	resp, err := download.ReadResponse(c.br, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	w.body.Reset()
	n, err := w.body.ReadFrom(resp.Body)
	if err != nil {
		return err
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("%d bytes of %d", n, resp.ContentLength)
	}
	if resp.Close {
		c.nc.Close()
		delete(w.conns, addr)
	}
	return nil
}

// store makes w.body the durable file final, owned by rawURL.
func (w *worker) store(final, rawURL string) error {
	dir := filepath.Dir(final)
	dirfd, err := w.dir(dir)
	if err != nil {
		return err
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o666)
	if err != nil {
		return fmt.Errorf("O_TMPFILE in %s: %w", dir, err)
	}
	defer unix.Close(fd)
	for b := w.body.Bytes(); len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if err := unix.Fsetxattr(fd, "user.ck.owner", []byte(rawURL), 0); err != nil && err != unix.ENOTSUP {
		return fmt.Errorf("owner xattr: %w", err)
	}
	if err := unix.Fsync(fd); err != nil {
		return err
	}
	err = unix.Linkat(fd, "", unix.AT_FDCWD, final, unix.AT_EMPTY_PATH)
	if err == unix.ENOENT { // AT_EMPTY_PATH refused (before Linux 6.10 without privileges)
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, final, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return fmt.Errorf("link %s: %w", final, err)
	}
	return unix.Fsync(dirfd)
}
