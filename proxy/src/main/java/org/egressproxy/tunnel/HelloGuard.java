package org.egressproxy.tunnel;

import io.netty.buffer.ByteBuf;

/**
 * The client's bytes from its checked ClientHello until the server's first record: the only
 * window in which a second ClientHello could reach the server unchecked. A client sends its
 * second hello only in answer to a HelloRetryRequest, which it cannot have before the proxy
 * passes it on (and then {@link TunnelSniCheck} checks that hello); a handshake record in this
 * window, or a second handshake message in the hello's last record, is a hello nobody would
 * check - a server that then answers with a HelloRetryRequest reads it as the retry. Records of
 * other types (change_cipher_spec, early data) go on untouched.
 *
 * <p>A record-framing state machine over the bytes as the relay reads them, in any split; it
 * looks at record headers and at the hello's 4-byte handshake header only, and never holds or
 * changes a byte.
 */
final class HelloGuard {
  private static final int HANDSHAKE = 0x16;
  private static final int HEADER = 5;

  /** Bytes of the current record header seen (0 between records). */
  private int headerSeen;
  private int recordLength;
  /** Bytes of the current record's body still to come. */
  private int bodyLeft;
  /** Handshake bytes in the hello's records whose headers were read. */
  private long handshakeEnd;
  /** The hello's handshake header bytes seen, its length field as far as read. */
  private int handshakeHeaderSeen;
  private int lengthRead;
  /** The hello's handshake bytes (4 + its body), once its header is read; -1 before. */
  private long helloLength = -1;
  /** The hello is whole: every record from here on must not be a handshake. */
  private boolean helloDone;
  /** The record whose body is being read ends the hello. */
  private boolean lastHelloRecord;

  /** Whether the readable bytes of {@code buf}, next in the client's stream, may go on. */
  boolean pass(ByteBuf buf) {
    int i = buf.readerIndex();
    final int end = buf.writerIndex();
    while (i < end) {
      if (bodyLeft == 0) { // a record header
        int b = buf.getUnsignedByte(i++);
        if (headerSeen == 0 && (b == HANDSHAKE) == helloDone) {
          return false; // a handshake record after the hello, or another record within it
        }
        if (headerSeen == 3) {
          recordLength = b << 8;
        }
        if (headerSeen < HEADER - 1) {
          headerSeen++;
          continue;
        }
        headerSeen = 0;
        bodyLeft = recordLength | b;
        if (!helloDone && !reach(handshakeEnd + bodyLeft)) {
          return false;
        }
        recordDone();
        continue;
      }
      int n = Math.min(bodyLeft, end - i);
      for (; !helloDone && handshakeHeaderSeen < 4 && n > 0; n--, i++, bodyLeft--) {
        // the hello's handshake header: type (1), then its body's length (3)
        int b = buf.getUnsignedByte(i);
        if (handshakeHeaderSeen > 0) {
          lengthRead = (lengthRead << 8) | b;
        }
        if (++handshakeHeaderSeen == 4) {
          helloLength = lengthRead + 4L;
          if (!reach(handshakeEnd)) {
            return false;
          }
        }
      }
      i += n;
      bodyLeft -= n;
      recordDone();
    }
    return true;
  }

  /** A record was read whole: the hello is whole if it was its last. */
  private void recordDone() {
    if (bodyLeft == 0 && lastHelloRecord) {
      lastHelloRecord = false;
      helloDone = true;
    }
  }

  /**
   * A hello record's header was read: the handshake bytes now reach {@code recordsEnd}.
   * False when that goes past the hello (a second message shares its last record).
   */
  private boolean reach(long recordsEnd) {
    handshakeEnd = recordsEnd;
    if (helloLength < 0) {
      return true; // the hello's length is not read yet
    }
    if (recordsEnd > helloLength) {
      return false;
    }
    lastHelloRecord = recordsEnd == helloLength;
    return true;
  }
}
