package org.egressproxy.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.ReferenceCountUtil;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ProxyHttpCodecTest {
  static EmbeddedChannel channel(Duration headTimeout) {
    return new EmbeddedChannel(new ProxyHttpCodec(8192, 16384, 8192, headTimeout));
  }

  /** The requests read from {@code text}, as "METHOD URI ok|failure message". */
  static List<String> read(EmbeddedChannel ch, String text) {
    ch.writeInbound(Unpooled.copiedBuffer(text, StandardCharsets.ISO_8859_1));
    List<String> out = new ArrayList<>();
    Object m;
    while ((m = ch.readInbound()) != null) {
      if (m instanceof HttpRequest r) {
        out.add(r.method() + " " + r.uri() + " " + (r.decoderResult().isSuccess() ? "ok"
            : "failure " + r.decoderResult().cause().getMessage()));
      }
      ReferenceCountUtil.release(m);
    }
    return out;
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
      "folded header | GET / HTTP/1.1\\r\\nHost: a\\r\\nX: 1\\r\\n 2\\r\\n\\r\\n | obsolete line folding",
      "folded with a tab | GET / HTTP/1.1\\r\\nHost: a\\r\\nX: 1\\r\\n\\t2\\r\\n\\r\\n | obsolete line folding",
      "first header line folded (Netty's own check) | GET / HTTP/1.1\\r\\n Host: a\\r\\n\\r\\n | only contain \"token\" characters",
      "two Host headers | GET / HTTP/1.1\\r\\nHost: a\\r\\nHost: b\\r\\n\\r\\n | more than one Host header",
      "HTTP/2 preface | PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n | HTTP/2.0 is not spoken here",
      "HTTP/3 | GET / HTTP/3.0\\r\\nHost: a\\r\\n\\r\\n | HTTP/3.0 is not spoken here",
  })
  void refusesWhatAProxyMustNotGuess(String name, String request, String problem) {
    EmbeddedChannel ch = channel(null);
    List<String> requests = read(ch, request.replace("\\r", "\r").replace("\\n", "\n")
        .replace("\\t", "\t"));
    assertThat(requests.get(0)).contains("failure").contains(problem);
    ch.finishAndReleaseAll();
  }

  @Test
  void leadingEmptyLinesBodiesAndPipelinedRequestsAreFine() {
    EmbeddedChannel ch = channel(null);
    // The body of the first request starts with a space after a LF: body bytes, not a head.
    assertThat(read(ch, "\r\nPOST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\n  x"
        + "GET /b HTTP/1.1\r\nHost: a\r\nX: spaced  value\r\n\r\n"
        + "GET /c HTTP/1.0\r\nHost: a\r\n\r\n"))
        .containsExactly("POST /a ok", "GET /b ok", "GET /c ok");
    ch.finishAndReleaseAll();
  }

  @Test
  void aHeadThatTakesTooLongGetsATimeoutFailure() throws Exception {
    EmbeddedChannel ch = channel(Duration.ofMillis(50));
    assertThat(read(ch, "GET / HTTP/1.1\r\nHost: a\r\n")).isEmpty(); // incomplete
    Thread.sleep(80);
    ch.runScheduledPendingTasks();
    HttpRequest late = ch.readInbound();
    assertThat(late.decoderResult().cause()).isInstanceOf(ProxyHttpCodec.HeadTimeoutException.class)
        .hasMessageContaining("50 ms");
    assertThat(read(ch, "X: y\r\n\r\n")).as("nothing read after the timeout").isEmpty();
    ch.finishAndReleaseAll();
  }

  @Test
  void theTimerRunsFromTheFirstByteOfEachLaterRequestOnly() throws Exception {
    EmbeddedChannel ch = channel(Duration.ofMillis(50));
    assertThat(read(ch, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).containsExactly("GET / ok");
    Thread.sleep(80); // idle between requests: not a head timeout
    ch.runScheduledPendingTasks();
    assertThat((Object) ch.readInbound()).isNull();
    assertThat(read(ch, "GET /2 HTTP/1.1\r\n")).isEmpty();
    Thread.sleep(80);
    ch.runScheduledPendingTasks();
    HttpRequest late = ch.readInbound();
    assertThat(late.decoderResult().cause()).isInstanceOf(ProxyHttpCodec.HeadTimeoutException.class);
    ch.finishAndReleaseAll();
  }

  @Test
  void aResponseToHeadHasNoBodyEvenWhenChunked() {
    EmbeddedChannel ch = channel(null);
    read(ch, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    DefaultFullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
        HttpResponseStatus.OK, Unpooled.EMPTY_BUFFER);
    r.headers().set(HttpHeaderNames.TRANSFER_ENCODING, "chunked");
    ch.writeOutbound(r);
    StringBuilder wire = new StringBuilder();
    ByteBuf b;
    while ((b = ch.readOutbound()) != null) {
      wire.append(b.toString(StandardCharsets.ISO_8859_1));
      b.release();
    }
    assertThat(wire.toString()).endsWith("\r\n\r\n").doesNotContain("0\r\n\r\n");
    ch.finishAndReleaseAll();
  }
}
