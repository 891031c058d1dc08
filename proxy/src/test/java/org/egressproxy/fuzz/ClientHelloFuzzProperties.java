package org.egressproxy.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;
import net.jqwik.api.lifecycle.AddLifecycleHook;
import org.egressproxy.it.ClientHellos;
import org.egressproxy.peek.ClientHello;

/**
 * Fuzzing the ClientHello parser, alone and behind Netty's record reassembly in the tls-sni
 * handler. The parser, on random bytes and on mutated hellos, either reads or throws its own
 * MalformedException, never anything else, and never moves the buffer; on generated hellos it
 * reads back exactly what was built. The handler, on mutated records cut into TCP-like chunks,
 * leaks nothing, lets nothing through to the pipeline's tail, writes nothing but the
 * access_denied alert, logs one decision for every connection it closes, and forwards only a
 * hello that names the allowed host.
 */
@AddLifecycleHook(FuzzScale.class)
class ClientHelloFuzzProperties {
  private static final byte[] ACCESS_DENIED = {21, 3, 3, 0, 2, 2, 49};
  private final Harness harness = new Harness();

  /** What a generated hello carries. */
  record Spec(List<String> names, List<String> alpn, int keyShare, boolean ech) {
    byte[] handshake() {
      List<byte[]> raw = new ArrayList<>();
      names.forEach(n -> raw.add(n.getBytes(StandardCharsets.US_ASCII)));
      return ClientHellos.handshake(raw, alpn, keyShare, ech);
    }
  }

  @Provide
  Arbitrary<Spec> specs() {
    Arbitrary<String> label = Arbitraries.strings().withChars("abcxyz0-9").ofMinLength(1)
        .ofMaxLength(10);
    Arbitrary<String> name = Arbitraries.oneOf(Arbitraries.of(Harness.ALLOWED,
            "WWW.ALLOWED.TEST.", "blocked.allowed.test", "evil.example"),
        label.list().ofMinSize(1).ofMaxSize(4).map(l -> String.join(".", l)));
    Arbitrary<String> proto = Arbitraries.strings().withCharRange('a', 'z').ofMinLength(1)
        .ofMaxLength(12);
    return Combinators.combine(name.list().ofMaxSize(3), proto.list().ofMaxSize(3),
            Arbitraries.of(0, 32, 1216), Arbitraries.of(true, false))
        .as(Spec::new);
  }

  /** The handshake body, after type (1) and length (3). */
  static ByteBuf body(byte[] handshake) {
    return Unpooled.wrappedBuffer(Arrays.copyOfRange(handshake, 4, handshake.length));
  }

  @Property(tries = 15_000)
  void generatedHellosReadBackAsBuilt(@ForAll("specs") Spec s) throws Exception {
    ByteBuf b = body(s.handshake());
    ClientHello h = ClientHello.parse(b);
    assertThat(h.serverName()).isEqualTo(s.names().isEmpty() ? null : s.names().get(0));
    assertThat(h.serverNames()).isEqualTo(s.names().size());
    assertThat(h.alpn()).isEqualTo(s.alpn());
    assertThat(h.ech()).isEqualTo(s.ech());
    assertThat(b.readerIndex()).isZero();
  }

  @Property(tries = 25_000)
  void randomBytesAreReadOrRefusedNeverThrown(@ForAll @Size(max = 300) byte[] bytes) {
    parsesOrRefuses(bytes);
  }

  @Property(tries = 25_000)
  void mutatedHellosAreReadOrRefusedNeverThrown(@ForAll("specs") Spec s,
      @ForAll("mutations") List<Mutation> mutations) {
    byte[] b = s.handshake();
    for (Mutation m : mutations) {
      b = m.apply(b);
    }
    parsesOrRefuses(b.length < 4 ? b : Arrays.copyOfRange(b, 4, b.length));
  }

  private static void parsesOrRefuses(byte[] bytes) {
    ByteBuf b = Unpooled.wrappedBuffer(bytes);
    try {
      ClientHello h = ClientHello.parse(b);
      assertThat(h.serverNames()).isGreaterThanOrEqualTo(h.serverName() == null ? 0 : 1);
    } catch (ClientHello.MalformedException e) {
      // refused: the only way out
    }
    assertThat(b.readerIndex()).isZero();
    assertThat(b.writerIndex()).isEqualTo(bytes.length);
  }

  @Provide
  Arbitrary<List<Mutation>> mutations() {
    return Mutation.arbitrary().list().ofMinSize(1).ofMaxSize(4);
  }

  @Property(tries = 5_000)
  void theTlsSniHandlerNeverLeaksThrowsOrForwardsAnotherName(@ForAll("specs") Spec s,
      @ForAll("mutations") List<Mutation> mutations, @ForAll boolean mutate,
      @ForAll("records") int records, @ForAll("records") int chunks) {
    byte[] b = ClientHellos.records(s.handshake(), records);
    if (mutate) {
      for (Mutation m : mutations) {
        b = m.apply(b);
      }
    }
    Harness.Outcome o = harness.run(harness.tls(), Mutation.split(b, chunks - 1));
    if (o.written().length > 0) {
      assertThat(o.written()).as("only ever an alert").isEqualTo(ACCESS_DENIED);
      assertThat(o.closed()).isTrue();
    }
    if (o.closed()) {
      assertThat(o.reasons().values().stream().mapToLong(Long::longValue).sum())
          .as("a closed connection has its decision logged").isEqualTo(1);
    }
    if (o.count("private-destination") > 0) {
      assertThat(new String(handshakeBytes(b), StandardCharsets.ISO_8859_1)
          .toLowerCase(java.util.Locale.ROOT))
          .as("forwarded only for the allowed name").contains(Harness.ALLOWED);
    }
    if (!mutate) {
      boolean allowed = s.names().size() == 1 && org.egressproxy.match.HostName.normalize(
          s.names().get(0)) != null && Harness.ALLOWED.equals(
              org.egressproxy.match.HostName.normalize(s.names().get(0)));
      assertThat(o.count("private-destination")).as("forwarded iff allowed")
          .isEqualTo(allowed ? 1 : 0);
    }
  }

  /** The payloads of the leading handshake records, joined: where a name may span records. */
  static byte[] handshakeBytes(byte[] records) {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    int p = 0;
    while (p + 5 <= records.length && records[p] == 22) {
      int len = ((records[p + 3] & 0xff) << 8) | (records[p + 4] & 0xff);
      int end = Math.min(records.length, p + 5 + len);
      out.write(records, p + 5, end - p - 5);
      p = end;
    }
    return out.toByteArray();
  }

  @Provide
  Arbitrary<Integer> records() {
    return Arbitraries.integers().between(1, 3);
  }
}
