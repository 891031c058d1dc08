package org.egressproxy.tunnel;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import java.io.ByteArrayOutputStream;
import java.util.HexFormat;
import java.util.concurrent.atomic.AtomicInteger;
import org.egressproxy.log.Connection;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.PipelineNames;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The upstream relay's look at the server's first record ({@link Relay#watchForRetry}): a
 * HelloRetryRequest runs the callback before any of it reaches the client, however the server's
 * bytes are split; anything else does not; every byte reaches the client unchanged and counted.
 */
class RelayRetryWatchTest {
  private static final byte[] HRR_RANDOM = HexFormat.of().parseHex(
      "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c");

  /** A ServerHello record with {@code random}, and a change_cipher_spec record after it. */
  private static byte[] serverFirst(byte[] random) {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.writeBytes(new byte[] {0x16, 3, 3, 0, 44, 2, 0, 0, 40, 3, 3});
    b.writeBytes(random);
    b.writeBytes(new byte[] {0, 0x13, 0x01, 0, 0, 0}); // no session id, a suite, no extensions
    b.writeBytes(new byte[] {0x14, 3, 3, 0, 1, 1});
    return b.toByteArray();
  }

  private final EmbeddedChannel client = new EmbeddedChannel();
  private final EmbeddedChannel upstream = new EmbeddedChannel();
  private final Connection c = new Connection("test", "127.0.0.1:40000");
  private final AtomicInteger retries = new AtomicInteger();
  /** How often the callback was told (retry or not): once per tunnel. */
  private final AtomicInteger told = new AtomicInteger();
  /** What the client had been sent when the callback ran. */
  private int sentBeforeRetry = -1;

  private void join() {
    Tunnels.join(client, upstream, c, new ProxyMetrics().bytes("test", "default"), null, false);
    ((Relay) upstream.pipeline().get(PipelineNames.RELAY)).watchForRetry(helloRetry -> {
      told.incrementAndGet();
      if (helloRetry) {
        retries.incrementAndGet();
        sentBeforeRetry = received(false).length;
      }
    });
  }

  /** Everything written to the client so far (taken off its queue when {@code take}). */
  private final ByteArrayOutputStream got = new ByteArrayOutputStream();

  private byte[] received(boolean take) {
    ByteArrayOutputStream all = new ByteArrayOutputStream();
    all.writeBytes(got.toByteArray());
    for (Object o : client.outboundMessages()) {
      ByteBuf b = (ByteBuf) o;
      byte[] a = new byte[b.readableBytes()];
      b.getBytes(b.readerIndex(), a);
      all.writeBytes(a);
    }
    if (take) {
      Object o;
      while ((o = client.readOutbound()) != null) {
        ByteBuf b = (ByteBuf) o;
        byte[] a = new byte[b.readableBytes()];
        b.readBytes(a);
        got.writeBytes(a);
        b.release();
      }
    }
    return all.toByteArray();
  }

  private void serverSends(byte[] bytes, int chunk) {
    for (int at = 0; at < bytes.length; at += chunk) {
      int n = Math.min(chunk, bytes.length - at);
      upstream.pipeline().fireChannelRead(Unpooled.copiedBuffer(bytes, at, n));
      upstream.pipeline().fireChannelReadComplete();
    }
  }

  @ParameterizedTest(name = "server's bytes {0} at a time")
  @ValueSource(ints = {1, 7, 42, 43, 1000})
  void aHelloRetryRequestIsSeenBeforeTheClientGetsIt(int chunk) {
    join();
    byte[] first = serverFirst(HRR_RANDOM);
    serverSends(first, chunk);
    assertThat(retries).hasValue(1);
    assertThat(sentBeforeRetry).as("bytes the client had before the check went on").isZero();
    assertThat(received(true)).isEqualTo(first);
    assertThat(c.bytesDown).isEqualTo(first.length);
    serverSends(serverFirst(HRR_RANDOM), 1000); // a later record: no longer looked at
    assertThat(retries).hasValue(1);
    assertThat(told).hasValue(1);
    client.finishAndReleaseAll();
    upstream.finishAndReleaseAll();
  }

  @ParameterizedTest(name = "server's bytes {0} at a time")
  @ValueSource(ints = {1, 1000})
  void anOrdinaryServerHelloOrNoTlsIsPassedOn(int chunk) {
    join();
    byte[] random = new byte[32];
    random[0] = 1;
    byte[] first = serverFirst(random);
    serverSends(first, chunk);
    byte[] plain = "HTTP/1.1 200 OK\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    serverSends(plain, chunk);
    assertThat(retries).hasValue(0);
    assertThat(told).as("told: not a retry").hasValue(1);
    ByteArrayOutputStream want = new ByteArrayOutputStream();
    want.writeBytes(first);
    want.writeBytes(plain);
    assertThat(received(true)).isEqualTo(want.toByteArray());
    client.finishAndReleaseAll();
    upstream.finishAndReleaseAll();
  }

  /** The server's FIN (or close) before its first 43 bytes: what came still reaches the client. */
  @Test
  void aFewBytesBeforeTheServersFinStillGoOn() {
    join();
    byte[] partial = java.util.Arrays.copyOf(serverFirst(HRR_RANDOM), 20);
    upstream.pipeline().fireChannelRead(Unpooled.copiedBuffer(partial));
    upstream.pipeline().fireChannelReadComplete();
    assertThat(received(false)).as("held while too few to tell").isEmpty();
    upstream.pipeline().fireUserEventTriggered(ChannelInputShutdownEvent.INSTANCE);
    client.runPendingTasks();
    assertThat(received(true)).isEqualTo(partial);
    assertThat(c.bytesDown).isEqualTo(partial.length);
    assertThat(retries).hasValue(0);
    assertThat(told).as("the FIN: told, not a retry").hasValue(1);
    client.finishAndReleaseAll();
    upstream.finishAndReleaseAll();

    EmbeddedChannel client2 = new EmbeddedChannel();
    EmbeddedChannel upstream2 = new EmbeddedChannel();
    Connection c2 = new Connection("test", "127.0.0.1:40001");
    Tunnels.join(client2, upstream2, c2, new ProxyMetrics().bytes("test", "default"), null,
        false);
    ((Relay) upstream2.pipeline().get(PipelineNames.RELAY)).watchForRetry(
        helloRetry -> told.incrementAndGet());
    upstream2.pipeline().fireChannelRead(Unpooled.copiedBuffer(partial, 0, 5));
    assertThat(c2.bytesDown).as("held").isZero();
    upstream2.close(); // closed with bytes held: they go on (and nothing leaks)
    assertThat(c2.bytesDown).isEqualTo(5);
    assertThat(told).as("the close: told").hasValue(2);
    client2.finishAndReleaseAll();
    upstream2.finishAndReleaseAll();
  }
}
