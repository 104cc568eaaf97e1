// Package fetch is ckfetch's run logic.
package fetch

import (
	"context"
	"io"
)

// Main runs ckfetch with args and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return 2
}
