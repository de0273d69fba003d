"""A TCP proxy on 127.0.0.1 that a test can cut (every connection reset, new ones refused) and restore."""
import selectors
import socket
import struct
import threading


def _reset(sock):
    """Close with an RST, so the peer fails at once instead of waiting for a FIN it may never read."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target` (host, port), one thread for all the traffic.

    `cut()` resets every open connection and resets each new one as soon as it is accepted
    (the client sees its connection refused or reset), until `restore()`."""

    def __init__(self, target):
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._peers = {}  # socket -> the socket it forwards to
        self._lock = threading.Lock()
        self._cut = False
        self._dropped = None
        self._stop = False
        self.accepted = 0
        self.refused = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, daemon=True, name="tcp-proxy")
        self._thread.start()

    # ------------------------------------------------------------ control

    def cut(self):
        """Reset every connection now and every new one until restore()."""
        dropped = threading.Event()
        with self._lock:
            self._cut = True
            self._dropped = dropped
        self._wake()
        # The loop thread owns the sockets: wait until it has reset them all.
        assert dropped.wait(timeout=5), "the proxy did not cut its connections"

    def restore(self):
        with self._lock:
            self._cut = False

    def close(self):
        self._stop = True
        self._wake()
        self._thread.join(timeout=5)
        for sock in list(self._peers):
            _reset(sock)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def is_cut(self):
        return self._cut

    def connections(self):
        return len(self._peers) // 2

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # ------------------------------------------------------------ the loop

    def _drop(self, sock):
        peer = self._peers.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self._peers.pop(s, None)
            try:
                self._selector.unregister(s)
            except (KeyError, ValueError):
                pass
            _reset(s)

    def _run(self):
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.5):
                sock = key.fileobj
                if sock is self._wake_r:
                    try:
                        sock.recv(4096)
                    except OSError:
                        pass
                elif sock is self._listener:
                    self._accept()
                elif sock in self._peers:
                    self._forward(sock)
            if self._cut:
                for sock in list(self._peers):
                    self._drop(sock)
                with self._lock:
                    if self._dropped is not None:
                        self._dropped.set()
                        self._dropped = None

    def _accept(self):
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._cut:
            self.refused += 1
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            _reset(client)
            return
        self.accepted += 1
        for s in (client, upstream):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._peers[client], self._peers[upstream] = upstream, client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)

    def _forward(self, sock):
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data or self._cut:
            self._drop(sock)
            return
        peer = self._peers[sock]
        try:
            peer.setblocking(True)
            peer.settimeout(5)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._drop(sock)
