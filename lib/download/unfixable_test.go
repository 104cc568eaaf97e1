package download_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ck-tools/ck/lib/download"
)

// TestUnfixableFailsAtOnce: errors that no retry can fix cost one attempt,
// not all the retries (a bad certificate, plain HTTP on an https URL, a
// redirect to an unsupported scheme or to a malformed Location), while a
// refused connection is still retried.
func TestUnfixableFailsAtOnce(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	tlsSrv := httptest.NewUnstartedServer(ok)           // its certificate is not in the client's roots
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are the point
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	plain := httptest.NewServer(ok)
	defer plain.Close()
	toFTP := httptest.NewServer(http.RedirectHandler("ftp://127.0.0.1/file", http.StatusFound))
	defer toFTP.Close()
	badLocation := func(loc string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", loc)
			w.WriteHeader(http.StatusFound)
		}))
	}
	notURL := badLocation("http://bad host/file") // a space in the host
	defer notURL.Close()
	noHost := badLocation("http:///file")
	defer noHost.Close()
	closed := httptest.NewServer(ok)
	closedURL := closed.URL
	closed.Close()

	for _, tc := range []struct {
		name, url, want string
		attempts        int
	}{
		{"certificate not trusted", tlsSrv.URL + "/f", "certificate", 1},
		{"http answer to https", "https://" + strings.TrimPrefix(plain.URL, "http://") + "/f", "HTTP response to HTTPS client", 1},
		{"redirect to ftp", toFTP.URL + "/f", "unsupported protocol scheme", 1},
		{"redirect to a Location that is not a URL", notURL.URL + "/f", "Location", 1},
		{"redirect to a URL without a host", noHost.URL + "/f", "without a host", 1},
		{"connection refused is retried", closedURL + "/f", "refused", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFetcher(2)
			res := f.Fetch(t.Context(), tc.url, "h", filepath.Join(t.TempDir(), "out"))
			if res.Status != download.Failed || res.Fatal {
				t.Fatalf("status %s (fatal %v), want a failure of the line", res.Status, res.Fatal)
			}
			if res.Attempts != tc.attempts {
				t.Errorf("%d attempts, want %d (err %v)", res.Attempts, tc.attempts, res.Err)
			}
			if res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", res.Err, tc.want)
			}
		})
	}
}
