package org.egressproxy.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AddLifecycleHook;

/**
 * Fuzzing the HTTP head path - Netty's decoder in {@link org.egressproxy.http.ProxyHttpCodec},
 * then our CONNECT and forwarding handlers - on both HTTP listeners. Requests are generated from
 * a small grammar, with at most one known defect (a smuggling shape, a bad host, a head over the
 * limit), so each has an expected answer: a defect is a 400 (431) and is never forwarded; a clean
 * request is forwarded when it names the allowed host (seen as a private-destination decision,
 * see {@link Harness}) and refused with a 403 otherwise. Random byte mutations of clean requests
 * check what cannot be predicted: no buffer leaks (input refCnts, and the PARANOID leak detector
 * over the class), nothing escaping to the pipeline's tail, only well-formed responses, and no
 * connection closed without an answer (the sign of an exception).
 */
@AddLifecycleHook(FuzzScale.class)
class HttpHeadFuzzProperties {
  private final Harness harness = new Harness();

  enum Defect {
    NONE("", 0),
    OBS_FOLD("obsolete line folding", 400),
    BARE_LF("Line Feed must be preceded by Carriage Return", 400),
    CL_AND_TE("Content-Length are not allowed", 400),
    TWO_CL("Multiple Content-Length values", 400),
    TWO_HOST("", 400),
    NUL_IN_VALUE("", 400),
    SPACE_BEFORE_COLON("", 400),
    HTTP2("", 400), // "HTTP/2.0 is not spoken here", or what Netty finds first
    UTF8_HOST("", 400),
    USERINFO("", 400),
    PERCENT_HOST("", 400),
    NUMERIC_HOST("", 400),
    HEAD_TOO_BIG("", 431);

    final String message;
    final int status;

    Defect(String message, int status) {
      this.message = message;
      this.status = status;
    }
  }

  /** A request as generated: which listener, its bytes, whether it names the allowed host. */
  record Request(boolean absoluteForm, String text, boolean allowedHost, Defect defect) {
    byte[] bytes() {
      return text.getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public String toString() {
      return (absoluteForm ? "explicit " : "http-host ") + defect + ": "
          + text.replace("\r", "\\r").replace("\n", "\\n").replace("\0", "\\0").replace("\t", "\\t");
    }
  }

  @Provide
  Arbitrary<Request> requests() {
    Arbitrary<String> method = Arbitraries.of("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS");
    Arbitrary<String> host = Arbitraries.of(Harness.ALLOWED, "WWW.Allowed.Test",
        Harness.ALLOWED + ".", "blocked.allowed.test", "evil.example", "x.allowed.test");
    Arbitrary<String> path = Arbitraries.strings().withChars("abcxyz019/._-~").ofMaxLength(30)
        .map(p -> "/" + p);
    Arbitrary<List<String>> headers = Combinators.combine(
            Arbitraries.strings().withCharRange('a', 'z').ofMinLength(1).ofMaxLength(12),
            Arbitraries.strings().withCharRange(' ', '~').ofMaxLength(40).map(String::strip))
        .as((n, v) -> "X-" + n + ": " + v).list().ofMaxSize(5);
    Arbitrary<Integer> body = Arbitraries.integers().between(-1, 40); // -1: chunked
    return Combinators.combine(Arbitraries.of(true, false), method, host,
            Arbitraries.of(-1, 80, 443), path, headers, body, defects())
        .as(HttpHeadFuzzProperties::build);
  }

  /** Half clean, half one of the defects. */
  static Arbitrary<Defect> defects() {
    return Arbitraries.frequencyOf(Tuple.of(1, Arbitraries.just(Defect.NONE)),
        Tuple.of(1, Arbitraries.of(Defect.values()).filter(d -> d != Defect.NONE)));
  }

  static Request build(boolean absolute, String method, String host, int port, String path,
      List<String> headers, int body, Defect defect) {
    String h = switch (defect) {
      case UTF8_HOST -> "bücher.allowed.test";
      case USERINFO -> "evil.example@" + Harness.ALLOWED;
      case PERCENT_HOST -> "www%2eallowed.test";
      case NUMERIC_HOST -> "127.1";
      default -> host;
    };
    if (!absolute) {
      port = -1; // http-host: the listener's port, whatever Host says
    }
    String authority = h + (port > 0 ? ":" + port : "");
    String version = defect == Defect.HTTP2 ? "HTTP/2.0" : "HTTP/1.1";
    String eol = defect == Defect.BARE_LF ? "\n" : "\r\n";
    StringBuilder sb = new StringBuilder();
    sb.append(method).append(' ').append(absolute ? "http://" + authority + path : path)
        .append(' ').append(version).append(eol);
    sb.append("Host: ").append(authority).append(eol);
    if (defect == Defect.TWO_HOST) {
      sb.append("Host: evil.example").append(eol);
    }
    for (String header : headers) {
      sb.append(header).append(eol);
    }
    switch (defect) {
      case OBS_FOLD -> sb.append("X-Folded: a").append(eol).append(" b").append(eol);
      case NUL_IN_VALUE -> sb.append("X-Nul: a\0b").append(eol);
      case SPACE_BEFORE_COLON -> sb.append("X-Space : a").append(eol);
      case HEAD_TOO_BIG -> sb.append("X-Big: ").append("a".repeat(17 * 1024)).append(eol);
      case CL_AND_TE -> sb.append("Content-Length: 3").append(eol)
          .append("Transfer-Encoding: chunked").append(eol);
      case TWO_CL -> sb.append("Content-Length: 3").append(eol).append("Content-Length: 4")
          .append(eol);
      default -> { }
    }
    boolean framed = defect == Defect.CL_AND_TE || defect == Defect.TWO_CL;
    String content = "";
    if (!framed && body >= 0) {
      sb.append("Content-Length: ").append(body).append(eol);
      content = "b".repeat(body);
    } else if (!framed) {
      sb.append("Transfer-Encoding: chunked").append(eol);
      content = "3\r\nabc\r\n0\r\n\r\n";
    }
    sb.append(eol).append(content);
    String name = org.egressproxy.match.HostName.normalize(h);
    return new Request(absolute, sb.toString(), Harness.ALLOWED.equals(name)
        && (port == -1 || port == 80 || port == 443), defect);
  }

  @Property(tries = 10_000)
  void generatedRequestsGetTheAnswerTheirDefectCalls(@ForAll("requests") Request r) {
    Harness.Outcome o = harness.run(harness.http(r.absoluteForm()), List.of(r.bytes()));
    List<Integer> statuses = o.statuses();
    assertThat(statuses).as("one answer").hasSize(1);
    if (r.defect() != Defect.NONE) {
      assertThat(statuses.get(0)).isEqualTo(r.defect().status);
      if (!r.text().startsWith("HEAD ")) { // an answer to HEAD has no body
        assertThat(o.text()).contains(r.defect().message);
      }
      assertThat(o.count("private-destination")).as("never forwarded").isZero();
      assertThat(o.closed()).as("closed after a malformed request").isTrue();
    } else if (r.allowedHost()) {
      assertThat(statuses.get(0)).isEqualTo(403);
      assertThat(o.count("private-destination")).as("forwarded (to the private check)")
          .isEqualTo(1);
    } else {
      assertThat(statuses.get(0)).isEqualTo(403);
      assertThat(o.count("private-destination")).isZero();
      assertThat(o.count("no-match") + o.count("deny-rule")).isEqualTo(1);
    }
  }

  @Provide
  Arbitrary<List<byte[]>> mutated() {
    Arbitrary<Request> clean = requests().filter(r -> r.defect() == Defect.NONE);
    Arbitrary<List<Mutation>> mutations = Mutation.arbitrary().list().ofMinSize(1).ofMaxSize(4);
    Arbitrary<Integer> split = Arbitraries.integers().between(0, 3);
    return Combinators.combine(clean, mutations, split).as((r, ms, s) -> {
      byte[] b = r.bytes();
      for (Mutation m : ms) {
        b = m.apply(b);
      }
      return Mutation.split(b, s);
    });
  }

  @Property(tries = 15_000)
  void mutatedRequestsNeverLeakThrowOrCloseWithoutAnAnswer(@ForAll boolean absoluteForm,
      @ForAll("mutated") List<byte[]> chunks) {
    Harness.Outcome o = harness.run(harness.http(absoluteForm), chunks);
    List<Integer> statuses = o.statuses();
    assertThat(statuses).allSatisfy(s -> assertThat(s).isIn(400, 403, 408, 431, 502, 504));
    if (o.closed()) {
      assertThat(statuses).as("closed only after an answer: %s", o.text()).isNotEmpty();
    }
    if (o.count("private-destination") > 0) {
      String all = new String(Mutation.join(chunks), StandardCharsets.ISO_8859_1)
          .toLowerCase(java.util.Locale.ROOT);
      assertThat(all).as("forwarded only for the allowed host").contains(Harness.ALLOWED);
    }
  }
}
