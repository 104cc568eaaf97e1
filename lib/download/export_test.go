package download

import (
	"context"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// SetBootIDPath makes the package read the boot id from path until t ends,
// so a test can simulate a reboot.
func SetBootIDPath(t testing.TB, path string) {
	old := bootIDPath
	bootIDPath = path
	t.Cleanup(func() { bootIDPath = old })
}

// RefuseXattrs makes every extended-attribute call fail with ENOTSUP until t
// ends, as on a file system without them.
func RefuseXattrs(t testing.TB) {
	set, get, remove := fsetxattr, fgetxattr, fremovexattr
	fsetxattr = func(int, string, []byte, int) error { return unix.ENOTSUP }
	fgetxattr = func(int, string, []byte) (int, error) { return 0, unix.ENOTSUP }
	fremovexattr = func(int, string) error { return unix.ENOTSUP }
	t.Cleanup(func() { fsetxattr, fgetxattr, fremovexattr = set, get, remove })
}

// RefuseTmpfile makes every O_TMPFILE open fail with EOPNOTSUPP until t
// ends, as on a file system without them, and counts the opens it refused.
func RefuseTmpfile(t testing.TB) *int {
	old := openTmpfile
	refused := new(int)
	openTmpfile = func(string, int, uint32) (int, error) { *refused++; return -1, unix.EOPNOTSUPP }
	t.Cleanup(func() { openTmpfile = old })
	return refused
}

// RefuseEmptyPath makes linkat refuse AT_EMPTY_PATH (ENOENT, as Linux
// before 6.10 does without CAP_DAC_READ_SEARCH) until t ends, and counts
// the refusals.
func RefuseEmptyPath(t testing.TB) *int {
	old := linkEmptyPath
	refused := new(int)
	linkEmptyPath = func(int, string) error { *refused++; return unix.ENOENT }
	emptyPathRefused.Store(false)
	t.Cleanup(func() { linkEmptyPath = old; emptyPathRefused.Store(false) })
	return refused
}

// WritePart leaves the .part of dest holding data, with validator recorded,
// as a run stopped cleanly would.
func WritePart(dest string, data []byte, validator string) error {
	p, _, err := openPart(context.Background(), dest, true)
	if err != nil {
		return err
	}
	if err := p.reset(validator); err != nil {
		p.close()
		return err
	}
	if err := p.write(data); err != nil {
		p.close()
		return err
	}
	return p.close()
}

// SetReleaseGrace sets how long a released host keeps its idle connections,
// until t ends.
func SetReleaseGrace(t testing.TB, d time.Duration) {
	old := releaseGrace
	releaseGrace = d
	t.Cleanup(func() { releaseGrace = old })
}

// PoolTemplate is the Transport a Pool clones for each host.
func PoolTemplate(p *Pool) *http.Transport { return p.template }

// ReadBufferOf is the read buffer size of the Transport through which c's
// Pool sends the requests of host (HostKey), 0 if it has none.
func ReadBufferOf(c *http.Client, host string) int {
	p := c.Transport.(*Pool)
	p.mu.Lock()
	defer p.mu.Unlock()
	if h := p.hosts[host]; h != nil && h.tr != nil {
		return h.tr.ReadBufferSize
	}
	return 0
}
