//go:build !linux

package splice

import "net"

// Available reports whether Copy splices on this system.
const Available = false

type pipe struct{}

func (c *Copier) copy(dst, src *net.TCPConn, n int64) (int64, error, error) {
	return 0, ErrUnsupported, nil
}
