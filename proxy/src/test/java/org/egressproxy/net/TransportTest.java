package org.egressproxy.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.channel.epoll.Epoll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Which transport {@code egress.transport} selects, and what the operator is told. */
class TransportTest {
  @AfterEach
  void clear() {
    System.clearProperty("egress.transport");
  }

  static Transport with(String value) {
    System.setProperty("egress.transport", value);
    return Transport.select();
  }

  @Test
  void nioOnRequestSaysSo() {
    Transport t = with("nio");
    assertThat(t.name()).isEqualTo("nio");
    assertThat(t.fallbackReason()).contains("egress.transport=nio");
    assertThat(t.transparentCapable()).isFalse();
  }

  @Test
  void anUnknownValueIsNamedAndTheDefaultUsed() {
    assumeTrue(Epoll.isAvailable(), "native epoll is not available here: test skipped");
    Transport t = with("epol");
    assertThat(t.name()).isEqualTo("epoll");
    assertThat(t.fallbackReason())
        .isEqualTo("egress.transport=epol is not one of epoll, nio; using epoll");
  }

  @Test
  void epollByDefaultWithoutANotice() {
    assumeTrue(Epoll.isAvailable(), "native epoll is not available here: test skipped");
    Transport t = with("epoll");
    assertThat(t.name()).isEqualTo("epoll");
    assertThat(t.fallbackReason()).isNull();
    assertThat(t.transparentCapable()).isTrue();
  }

  /**
   * The proxy does not set TCP_NODELAY itself (a system call per socket): Netty turns it on for
   * every TCP socket it creates, on both transports. Should a Netty upgrade stop doing so, this
   * fails and the option goes back into the bootstraps.
   */
  @Test
  void socketsHaveNoDelayWithoutBeingAsked() throws Exception {
    java.util.List<Transport> transports = new java.util.ArrayList<>();
    transports.add(Transport.nio("test"));
    if (Epoll.isAvailable()) {
      transports.add(with("epoll"));
    }
    for (Transport t : transports) {
      io.netty.channel.socket.SocketChannel ch =
          t.socketChannel().getDeclaredConstructor().newInstance();
      try {
        assertThat(ch.config().getOption(io.netty.channel.ChannelOption.TCP_NODELAY))
            .as(t.name()).isTrue();
      } finally {
        ch.unsafe().closeForcibly();
      }
    }
  }
}
