package org.egressproxy.tunnel;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.Unpooled;
import java.io.ByteArrayOutputStream;
import java.util.List;
import org.egressproxy.it.ClientHellos;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link HelloGuard}: the client's stream from its ClientHello to the server's first record,
 * fed in every chunk size from 1 byte up, with the hello in one record or several (its 4-byte
 * handshake header split across records too).
 */
class HelloGuardTest {
  private static final byte[] CCS = {0x14, 3, 3, 0, 1, 1};
  private static final byte[] EARLY_DATA = {0x17, 3, 3, 0, 3, 9, 9, 9};

  private static byte[] hello() {
    return ClientHellos.handshake("www.allowed.test", List.of("h2"), 1216, false);
  }

  private static byte[] concat(byte[]... parts) {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    for (byte[] p : parts) {
      b.writeBytes(p);
    }
    return b.toByteArray();
  }

  /** The stream fed to a fresh guard {@code chunk} bytes at a time: whether it all passed. */
  private static boolean passes(byte[] stream, int chunk) {
    HelloGuard g = new HelloGuard();
    for (int at = 0; at < stream.length; at += chunk) {
      int n = Math.min(chunk, stream.length - at);
      if (!g.pass(Unpooled.wrappedBuffer(stream, at, n))) {
        return false;
      }
    }
    return true;
  }

  private static void assertEveryChunking(byte[] stream, boolean passes) {
    for (int chunk : new int[] {1, 2, 3, 4, 5, 6, 7, 9, 13, 64, 1000, stream.length}) {
      assertThat(passes(stream, chunk)).as("%d bytes at a time", chunk).isEqualTo(passes);
    }
  }

  /** hello records (1, 2, or 1,000: 2-byte fragments, the handshake header split) */
  @ParameterizedTest(name = "hello in {0} record(s)")
  @CsvSource({"1", "2", "1000"})
  void aHelloAndWhatMayFollowItPass(int records) {
    byte[] hello = ClientHellos.records(hello(), records);
    assertEveryChunking(hello, true);
    assertEveryChunking(concat(hello, CCS, EARLY_DATA, EARLY_DATA), true);
  }

  @ParameterizedTest(name = "hello in {0} record(s)")
  @CsvSource({"1", "2", "1000"})
  void aHandshakeRecordBehindTheHelloIsRefused(int records) {
    byte[] hello = ClientHellos.records(hello(), records);
    assertEveryChunking(concat(hello, ClientHellos.records(hello(), 1)), false);
    assertEveryChunking(concat(hello, CCS, ClientHellos.records(hello(), 2)), false);
    assertEveryChunking(concat(hello, EARLY_DATA, new byte[] {0x16}), false); // its first byte
  }

  @ParameterizedTest(name = "hello in {0} record(s)")
  @CsvSource({"1", "2", "3"})
  void aSecondMessageInTheHellosLastRecordIsRefused(int records) {
    byte[] two = concat(hello(), hello());
    // cut so that the last record holds the end of the first hello and all of the second
    byte[] stream = ClientHellos.records(two, records == 1 ? 1 : 2);
    if (records == 3) {
      byte[] tiny = java.util.Arrays.copyOf(two, hello().length + 1); // one byte of the second
      stream = ClientHellos.records(tiny, 1);
    }
    assertEveryChunking(stream, false);
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"change_cipher_spec", "application_data"})
  void anotherRecordTypeWithinTheHelloIsRefused(String type) {
    byte[] records = ClientHellos.records(hello(), 2);
    int split = 5 + ((records[3] & 0xff) << 8 | (records[4] & 0xff));
    byte[] between = type.equals("change_cipher_spec") ? CCS : EARLY_DATA;
    byte[] stream = concat(java.util.Arrays.copyOf(records, split), between,
        java.util.Arrays.copyOfRange(records, split, records.length));
    assertEveryChunking(stream, false);
  }
}
