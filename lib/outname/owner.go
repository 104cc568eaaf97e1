package outname

import (
	"fmt"
	"strings"

	"github.com/zeebo/xxh3"
)

// MaxOwnerURL is the longest URL an owner record (see Owner) holds whole;
// a longer one is cut there, so the record fits in any file system's
// extended attributes.
const MaxOwnerURL = 1024

// Owner returns the record that ckfetch keeps with a final file to say which
// URL it is the file of: the URL itself, or for a URL over MaxOwnerURL bytes
// its first MaxOwnerURL bytes, a NUL (which no URL ckfetch fetches contains)
// and a 128-bit digest of its Tree name.
func Owner(rawURL string) string {
	if len(rawURL) <= MaxOwnerURL {
		return rawURL
	}
	return rawURL[:MaxOwnerURL] + "\x00" + treeKey(rawURL)
}

// SameOwner reports whether an owner record names the resource of rawURL:
// the same URL, or one with the same name in either layout (URLs that differ
// only in what a layout ignores or normalises, such as the fragment, the case
// of the scheme and host, a default port or an escaped unreserved character,
// are one resource and share a file). A cut record made by a version before
// the tree layout holds a digest of the Flat name; it is recognised too.
func SameOwner(owner, rawURL string) bool {
	if owner == rawURL || owner == Owner(rawURL) {
		return true
	}
	if i := strings.IndexByte(owner, 0); i >= 0 {
		key := owner[i+1:]
		return key == treeKey(rawURL) || key == flatKey(rawURL)
	}
	return treeKey(owner) == treeKey(rawURL) || flatKey(owner) == flatKey(rawURL)
}

// OwnerURL returns the URL of an owner record for a message, marked when
// it was cut.
func OwnerURL(owner string) string {
	if i := strings.IndexByte(owner, 0); i >= 0 {
		return owner[:i] + "..."
	}
	return owner
}

// treeKey is a digest of what identifies a URL's resource: its Tree name,
// or for a string that is no URL ckfetch fetches, the string itself. The
// "tree" prefix keeps it apart from every flatKey.
func treeKey(rawURL string) string {
	name, err := Tree.Name(rawURL)
	if err != nil {
		name = "\x00" + rawURL // apart from every name
	}
	return digest("tree\x00" + name)
}

// flatKey is the key of owner records before the tree layout: a digest of
// the Flat name. Unchanged, so that their cut records still match.
func flatKey(rawURL string) string {
	name, err := flatName(rawURL)
	if err != nil {
		name = "\x00" + rawURL // apart from every name
	}
	return digest(name)
}

func digest(s string) string {
	sum := xxh3.HashString128(s).Bytes()
	return fmt.Sprintf("%x", sum[:])
}
