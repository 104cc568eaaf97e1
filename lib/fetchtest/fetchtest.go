// Package fetchtest is an HTTP server for tests that misbehaves on purpose.
package fetchtest

import (
	"net/http"
	"net/http/httptest"
)

// Server is a test server on 127.0.0.1.
type Server struct {
	*httptest.Server
}

// New starts a Server.
func New() *Server {
	return &Server{httptest.NewServer(http.NotFoundHandler())}
}
