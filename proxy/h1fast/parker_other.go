//go:build !linux

package h1fast

import "errors"

// parker is Linux's epoll set; elsewhere idle connections wait in goroutines.
type parker struct{}

func newParker(*Server) (*parker, error) { return nil, errors.New("no epoll on this system") }

func (p *parker) watch(int, *conn) error { return errors.New("no epoll on this system") }
func (p *parker) unwatch(int, *conn)     {}
func (p *parker) readable(int) bool      { return true }
func (p *parker) close()                 {}

func (p *parker) appendConns(all []*conn) []*conn { return all }
func (p *parker) count() int                      { return 0 }
