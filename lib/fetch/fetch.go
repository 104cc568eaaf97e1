// Package fetch is ckfetch's run logic: it reads URL lines, downloads them
// with limits over all hosts and per host, and echoes each line once its file
// is durable, in input order unless asked otherwise.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"golang.org/x/time/rate"

	"github.com/ck-tools/ck/lib/cli"
	"github.com/ck-tools/ck/lib/download"
	"github.com/ck-tools/ck/lib/durable"
	"github.com/ck-tools/ck/lib/gcpace"
	"github.com/ck-tools/ck/lib/redact"
)

// HeapHeadroom is how much the heap may grow between two garbage
// collections at least while Main runs (gcpace.Headroom): on small files
// ckfetch lives in a few MiB and allocates a few KiB per file, so at
// GOGC=100 the collector ran every 1,500 files or so, for 6% of the run's
// CPU; the cost is at most this much more memory than GOGC=100's.
const HeapHeadroom = 16 << 20

const description = `Downloads the URLs it reads on stdin, one per line (URL, or URL<TAB>PATH with a path
relative to the output directory), and echoes each line on stdout once its file is
complete and durable under its final name. Blank lines and lines starting with # are
ignored. URL<TAB>PATH<TAB>ALGO=HEX (PATH may be empty: the default name) gives a
checksum, sha256, sha512, sha1 or md5, checked before the file is final; a file
already there is then read to check it. Exit status: 0 all done, 1 some failed, 2 usage error or fatal I/O,
130/143 after SIGINT/SIGTERM, 141 when stdout was closed.`

// CLI is ckfetch's command line.
type CLI struct {
	Jobs           int           `short:"j" default:"8" help:"Downloads at once, over all hosts."`
	Dir            string        `short:"d" default:"." placeholder:"DIR" help:"Output directory, created if missing (default: the current directory); or s3://BUCKET/PREFIX: each file is downloaded into --spool, then stored as the object PREFIX/NAME (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile), and echoed once the object is stored."`
	Sleep          time.Duration `default:"0s" help:"At least this long between the starts of two requests to the same host, redirect hops included."`
	PerHost        int           `name:"per-host" default:"4" help:"Downloads at once from one host (host:port); every redirect hop counts against the host it goes to."`
	HostFailures   int           `name:"host-failures" default:"20" placeholder:"N" help:"After N connection failures in a row on one host (refused, unreachable, DNS, connect or TLS handshake) with no response between, its other lines fail at once with 'host unreachable'; lines already running finish their retries. 0: never."`
	Failed         string        `placeholder:"FILE" help:"Append each line that failed for good to FILE, after a '# reason' line; FILE is valid ckfetch input. Without it, the first failure stops the echo of later lines."`
	Unordered      bool          `help:"Echo lines in completion order, not input order (for ckskip --set checkpoints)."`
	Force          bool          `help:"Download even when the final file exists."`
	Retries        int           `default:"5" help:"Retries after the first attempt, on connection errors, timeouts, truncated bodies, 408, 429 and 5xx."`
	Backoff        time.Duration `default:"1s" help:"Wait before the first retry; doubled each time, with jitter."`
	MaxBackoff     time.Duration `name:"max-backoff" default:"2m" help:"Longest wait between two tries, Retry-After included."`
	ConnectTimeout time.Duration `name:"connect-timeout" default:"30s" help:"Give up connecting after this long (retryable)."`
	StallTimeout   time.Duration `name:"stall-timeout" default:"60s" help:"Give up an attempt when no byte arrived for this long (retryable); 0: never."`
	Report         string        `placeholder:"FILE" help:"Append one JSON object per URL to FILE: url, final_url, path, status, http_status, bytes, attempts, duration_ms, error, sha256 (of each file downloaded, computed while it streams)."`
	Layout         string        `enum:"tree,flat" default:"tree" placeholder:"tree|flat" help:"Default names: tree is DIR/HOST[:PORT]/decoded/path/file?query (as wget -x); flat is DIR/SCHEME/HOST/escaped-path-and-query, the names of ckfetch before the tree layout, for lists begun with them."`
	Quiet          bool          `short:"q" help:"No progress and no summary (errors are still printed)."`
	Window         int           `default:"50000" help:"Most lines between the oldest unsettled one and the newest started (bounds memory)."`

	Header    []string `short:"H" sep:"none" placeholder:"'NAME: VALUE'" help:"Send this header with every request (repeatable). Authorization and Cookie go only to the input URL's scheme, host and port, never after a redirect elsewhere. 'NAME:' removes a header, 'NAME;' sends it empty."`
	UserAgent string   `name:"user-agent" default:"${user_agent}" placeholder:"STRING" help:"The User-Agent header (default: ${user_agent}); '' sends none."`
	NetrcFile string   `name:"netrc-file" placeholder:"FILE" help:"Credentials per host from this netrc file (machine/login/password/default, as curl reads it); default: ~/.netrc if there is one (--netrc-file /dev/null: none)."`
	LimitRate ByteRate `name:"limit-rate" default:"0" placeholder:"RATE" help:"Read at most RATE bytes per second over all downloads together; k, M, G suffixes are 1024, 1024^2, 1024^3 (500k, 1.5M); 0: no limit."`
	CACert    string   `name:"ca-cert" placeholder:"FILE" help:"Trust the PEM certificates in FILE as roots, besides the system's (SSL_CERT_FILE and SSL_CERT_DIR work too)."`
	Proxy     string   `placeholder:"URL" help:"Send every request through this proxy (http://, https://, socks5://; host:port means http://). Without it HTTP_PROXY, HTTPS_PROXY and NO_PROXY apply."`

	Spool       string   `placeholder:"DIR" help:"With -d s3://BUCKET/PREFIX: where files are downloaded (and resumed) before they are stored (default: the user cache directory's ck/spool/BUCKET/PREFIX); each is removed once its object is stored."`
	S3Endpoint  string   `name:"s3-endpoint" placeholder:"URL" help:"With -d s3://: the URL of an S3-compatible server (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's endpoint_url, else AWS S3)."`
	S3PartSize  ByteSize `name:"s3-part-size" default:"16M" placeholder:"SIZE" help:"With -d s3://: the part size of multipart uploads (at least 5M)."`
	S3Multipart ByteSize `name:"s3-multipart-threshold" default:"64M" placeholder:"SIZE" help:"With -d s3://: files from this size on are stored as multipart uploads (resumed part by part after an interruption); smaller ones as one PUT."`

	// What -d s3:// opens (openStore): the destination as given, and the
	// store; c.Dir is then the spool.
	dest  string
	store download.Store

	// What the request flags give, made by load.
	headers http.Header
	netrc   *download.Netrc
	client  *http.Client
}

// ByteRate is a --limit-rate value, in bytes per second.
type ByteRate int64

// UnmarshalText reads a rate: a number, optionally with a fraction, and a
// k, M or G suffix (any case) meaning 1024, 1024^2 or 1024^3, as wget and
// curl read --limit-rate.
func (r *ByteRate) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	mult := 1.0
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return fmt.Errorf("%q is not a rate: want bytes per second, such as 200k or 1.5M", b)
	}
	n := v * mult
	if n > 0 && n < 1 {
		return fmt.Errorf("%q is less than one byte per second", b)
	}
	if n > math.MaxInt64/2 {
		return fmt.Errorf("%q is too large", b)
	}
	*r = ByteRate(math.Round(n))
	return nil
}

// ByteSize is a size flag: a number with an optional k, M or G suffix
// (1024, 1024^2, 1024^3), as --limit-rate reads it.
type ByteSize int64

// UnmarshalText reads a size such as 5M or 16777216.
func (b *ByteSize) UnmarshalText(t []byte) error {
	var r ByteRate
	if err := r.UnmarshalText(t); err != nil {
		return fmt.Errorf("%q is not a size: want bytes, such as 5M or 16M", t)
	}
	*b = ByteSize(r)
	return nil
}

// UserAgent is the default User-Agent: ck/VERSION and the project's URL.
func UserAgent() string {
	return "ck/" + cli.UserAgentVersion() + " (+https://github.com/ck-tools/ck)"
}

// load reads what the request flags name (the -H headers, the netrc file,
// --ca-cert, --proxy) before the run starts; its errors are usage errors
// and name the flag or file and line.
func (c *CLI) load() error {
	var err error
	if c.headers, err = download.ParseHeaders(c.Header); err != nil {
		return err
	}
	if _, set := c.headers["User-Agent"]; c.UserAgent == "" && !set {
		c.headers["User-Agent"] = []string{} // --user-agent '': none, as in curl
	}
	if c.netrc, err = loadNetrc(c.NetrcFile); err != nil {
		return err
	}
	c.client, err = download.NewClient(download.ClientOptions{
		ConnectTimeout: c.ConnectTimeout, StallTimeout: c.StallTimeout, Jobs: c.Jobs, PerHost: c.PerHost,
		CACert: c.CACert, Proxy: c.Proxy,
	})
	return err
}

// loadNetrc reads the netrc file name, or ~/.netrc if name is "" (none if
// there is no such file).
func loadNetrc(name string) (*download.Netrc, error) {
	explicit := name != ""
	if !explicit {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, nil
		}
		name = filepath.Join(home, ".netrc")
	}
	n, err := download.ReadNetrc(name)
	var pe *fs.PathError
	switch {
	case err == nil:
		return n, nil
	case !explicit && errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.As(err, &pe):
		return nil, fmt.Errorf("netrc file %s: %w (fix it, or read none with --netrc-file /dev/null)", name, pe.Err)
	}
	return nil, fmt.Errorf("%w (fix the netrc file, or read none with --netrc-file /dev/null)", err)
}

// Validate checks the rules between flags.
func (c *CLI) Validate() error {
	switch {
	case c.Jobs < 1:
		return errors.New("--jobs must be at least 1")
	case c.PerHost < 1:
		return errors.New("--per-host must be at least 1")
	case c.Retries < 0:
		return errors.New("--retries must not be negative")
	case c.HostFailures < 0:
		return errors.New("--host-failures must not be negative (0 turns host health off)")
	case c.Window < 1:
		return errors.New("--window must be at least 1")
	case !isS3(c.Dir) && (c.Spool != "" || c.S3Endpoint != ""):
		return errors.New("--spool and --s3-endpoint go with -d s3://BUCKET/PREFIX only")
	case c.Sleep < 0 || c.Backoff < 0 || c.MaxBackoff < 0 || c.ConnectTimeout < 0 || c.StallTimeout < 0:
		return errors.New("durations must not be negative")
	}
	return nil
}

// Main runs ckfetch with args and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c CLI
	if code, ok := cli.Parse("ckfetch", description, &c, args, stdout, stderr, kong.Vars{"user_agent": UserAgent()}); !ok {
		return code
	}
	// A closed stdout is noticed as EPIPE and ends the run with its summary
	// and status (141, or the signal's during a shutdown); left to the
	// runtime, SIGPIPE would kill the process with neither.
	signal.Ignore(syscall.SIGPIPE)
	defer gcpace.Headroom(HeapHeadroom)()
	log := cli.Logger{Name: "ckfetch", W: stderr}
	if err := c.load(); err != nil {
		log.Printf("%v", err)
		return cli.ExitUsage
	}
	if isS3(c.Dir) {
		// Before any download: a wrong bucket, endpoint or key stops here.
		if err := c.openStore(ctx); err != nil {
			log.Printf("%v", err)
			return cli.ExitUsage
		}
	}
	r, err := newRun(&c, stdin, stdout, stderr)
	if err != nil {
		log.Printf("%v", err)
		return cli.ExitUsage
	}
	defer r.close()
	return r.run(ctx, stdin)
}

// checkDir makes sure files can be created in dir, before any work starts.
// A dir it creates is fsynced into its parent, as every directory of a file
// echoed must be.
func checkDir(dir string) error {
	if err := durable.MkdirAll(dir, durable.SyncDir); err != nil {
		return fmt.Errorf("output directory %s cannot be created: %w (choose another with -d)", dir, errors.Unwrap(err))
	}
	f, err := os.CreateTemp(dir, ".ckfetch-probe-*.part")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %w (fix its permissions or choose another with -d)", dir, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// newFetcher returns the run's Fetcher, with the settings that load made,
// paced by s, and ties s to the client's connection pool: s releases hosts
// out of play, the pool tells s of every connection's fate (host health),
// and the Fetcher tells the pool the files and directories it has open,
// and asks it for room before it opens one (they share the descriptors).
func newFetcher(c *CLI, s *sched, prog func(int64)) *download.Fetcher {
	var limit *rate.Limiter
	if c.LimitRate > 0 {
		limit = download.NewRateLimit(int64(c.LimitRate))
	}
	pool := c.client.Transport.(*download.Pool)
	s.pool = pool
	s.setHealth(c.HostFailures)
	pool.OnConn = s.connResult
	f := &download.Fetcher{
		Client:       c.client,
		Retries:      c.Retries,
		Backoff:      c.Backoff,
		MaxBackoff:   c.MaxBackoff,
		StallTimeout: c.StallTimeout,
		Force:        c.Force,
		Pacer:        s,
		Dirs:         &durable.DirSyncer{Room: pool.Room},
		Root:         c.Dir,
		Progress:     prog,
		Header:       c.headers,
		UserAgent:    c.UserAgent,
		Netrc:        c.netrc,
		Rate:         limit,
		Store:        c.store,
	}
	pool.Files = f.OpenFiles
	f.Room = pool.Room
	return f
}

// shortLine shortens a line for a message, with the user information of
// its URLs masked (messages are masked again by cli.Logger; a line is masked
// before it is cut, so a cut cannot hide the '@' that ends a password).
func shortLine(s string) string {
	s = redact.Mask(s)
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
