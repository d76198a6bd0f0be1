package output

import "github.com/tcpclose-trace/tcpclose-trace/collector"

// Hint says, for an anomaly kind, what the code did wrong and how to fix it.
func Hint(k collector.Kind) string {
	switch k {
	case collector.KindUnreadClose:
		return "close() with unread data: the kernel sent RST and the peer lost what it sent. Read until EOF (read returns 0), or shutdown(SHUT_WR) then drain, before close()."
	case collector.KindUndrainedClose:
		return "close() before the peer's EOF (no drain): whatever the peer sends after it is refused with RST (data_after_close). shutdown(SHUT_WR), read until EOF, then close()."
	case collector.KindDataAfterClose:
		return "the peer sent data after this process closed; it was refused with RST (the peer sees ECONNRESET). Drain before close(): shutdown(SHUT_WR), read until EOF, close()."
	case collector.KindAbortClose:
		return "SO_LINGER {on, 0}: close() reset the connection and discarded unsent data. If that is not intended, drop the zero linger."
	case collector.KindResetReceived:
		return "the peer (or a middlebox) reset the connection: look on the peer for why (run tcpclose-trace there)."
	case collector.KindResetSent:
		return "this host sent RST; the reason names the kernel's cause (NO_SOCKET: nothing listens on that port)."
	}
	return ""
}
