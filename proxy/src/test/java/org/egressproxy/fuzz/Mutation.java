package org.egressproxy.fuzz;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;

/**
 * One random edit of a byte string, at a relative position so that it fits any input: the
 * mutations a fuzzer applies to valid inputs to reach the parsers' corners.
 */
record Mutation(Kind kind, double at, double to, int value) {
  enum Kind {
    FLIP_BIT, SET_BYTE, INSERT, DELETE, DUPLICATE, TRUNCATE, SET_U16
  }

  /** Bytes that mean something to the parsers: line ends, separators, TLS lengths' extremes. */
  private static final int[] INTERESTING = {'\r', '\n', 0, ' ', '\t', ':', '@', '%', '.', '/',
      0x7f, 0x80, 0xff, 0x16, 0x03, 0x01, '0', '9', 'a'};

  static Arbitrary<Mutation> arbitrary() {
    Arbitrary<Integer> value = Arbitraries.oneOf(Arbitraries.integers().between(0, 255),
        Arbitraries.of(Arrays.stream(INTERESTING).boxed().toList()),
        Arbitraries.of(0, 1, 0x7fff, 0xffff, 0x4000, 0x100)); // u16 lengths
    return Combinators.combine(Arbitraries.of(Kind.values()),
        Arbitraries.doubles().between(0, 1), Arbitraries.doubles().between(0, 1), value)
        .as(Mutation::new);
  }

  byte[] apply(byte[] in) {
    int n = in.length;
    int i = Math.min(n, (int) (at * n));
    int j = Math.min(n, i + (int) (to * Math.min(n - i, 64)));
    ByteArrayOutputStream out = new ByteArrayOutputStream(n + 64);
    switch (kind) {
      case FLIP_BIT -> {
        if (i == n) {
          return in;
        }
        byte[] b = in.clone();
        b[i] ^= (byte) (1 << (value & 7));
        return b;
      }
      case SET_BYTE -> {
        if (i == n) {
          return in;
        }
        byte[] b = in.clone();
        b[i] = (byte) value;
        return b;
      }
      case SET_U16 -> {
        if (i + 1 >= n) {
          return in;
        }
        byte[] b = in.clone();
        b[i] = (byte) (value >>> 8);
        b[i + 1] = (byte) value;
        return b;
      }
      case INSERT -> {
        out.write(in, 0, i);
        out.write(value);
        out.write(in, i, n - i);
      }
      case DELETE -> {
        out.write(in, 0, i);
        out.write(in, j, n - j);
      }
      case DUPLICATE -> {
        out.write(in, 0, j);
        out.write(in, i, j - i);
        out.write(in, j, n - j);
      }
      case TRUNCATE -> out.write(in, 0, i);
      default -> throw new IllegalStateException();
    }
    return out.toByteArray();
  }

  /** {@code b} cut into {@code parts + 1} chunks at fixed fractions (reads as TCP delivers). */
  static List<byte[]> split(byte[] b, int parts) {
    List<byte[]> out = new ArrayList<>();
    int from = 0;
    for (int k = 1; k <= parts; k++) {
      int cut = (int) ((long) b.length * k / (parts + 1));
      out.add(Arrays.copyOfRange(b, from, cut));
      from = cut;
    }
    out.add(Arrays.copyOfRange(b, from, b.length));
    return out;
  }

  static byte[] join(List<byte[]> chunks) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    chunks.forEach(c -> out.write(c, 0, c.length));
    return out.toByteArray();
  }
}
