package org.egressproxy.tunnel;

import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.ssl.SslClientHelloHandler;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ScheduledFuture;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.egressproxy.log.Connection;
import org.egressproxy.match.HostName;
import org.egressproxy.net.PipelineNames;
import org.egressproxy.net.ProxyRuntime;
import org.egressproxy.peek.ClientHello;

/**
 * In a CONNECT tunnel, when the client's first bytes are a TLS ClientHello, its SNI must name the
 * host the CONNECT authorized; otherwise the tunnel is closed before any client byte reaches the
 * upstream ({@code sni-mismatch}); under {@code tunnel.refuseEch} a ClientHello with an Encrypted
 * Client Hello extension is refused the same way ({@code ech-refused}). While the SNI must match,
 * TLS that cannot be checked - a hello we cannot read, or a record other than a handshake before
 * it - is refused too ({@code bad-request}): a TLS server might read a name in it nobody checked.
 * Bytes that are not TLS pass unchanged. The handler removes itself once it has seen the
 * ClientHello, leaving the plain relay; a second ClientHello, after a HelloRetryRequest, is
 * checked the same way ({@link #watchForRetry}).
 */
public final class TunnelSniCheck extends SslClientHelloHandler<Void> {
  /** Records (change_cipher_spec, early data) a client may send before a second hello. */
  private static final int MAX_RECORDS_BEFORE_RETRY = 8;

  private final ProxyRuntime runtime;
  private final Channel upstream;
  /** The second ClientHello, after a HelloRetryRequest: checked whatever the configuration. */
  private final boolean retry;
  private ScheduledFuture<?> timeout;
  private boolean checked;
  private boolean refused;
  private int skipped;
  private boolean sawHello;

  public TunnelSniCheck(ProxyRuntime runtime, Channel upstream) {
    this(runtime, upstream, false);
  }

  private TunnelSniCheck(ProxyRuntime runtime, Channel upstream, boolean retry) {
    super(TlsSniHandler.MAX_CLIENT_HELLO);
    this.runtime = runtime;
    this.upstream = upstream;
    this.retry = retry;
  }

  /**
   * After a first ClientHello was let through to {@code upstream}: should the server answer it
   * with a HelloRetryRequest, the client's second ClientHello - which could name another host -
   * is checked as the first was, against the name decided ({@code tls-sni}: its SNI; a tunnel:
   * the CONNECT host). For both a CONNECT tunnel and {@code tls-sni}.
   */
  public static void watchForRetry(ProxyRuntime runtime, Channel client, Channel upstream) {
    if (upstream.pipeline().get(PipelineNames.RELAY) instanceof Relay down
        && client.pipeline().get(PipelineNames.RELAY) instanceof Relay up) {
      // Until the server answers, another ClientHello could only be one sent ahead of any
      // HelloRetryRequest, which the server would read as the retry: refused (HelloGuard).
      up.guard(new HelloGuard(), () -> {
        Connection c = ProxyRuntime.connection(client);
        if (c != null) {
          c.reason = "bad-request";
          runtime.decided(c);
        }
        client.close();
        upstream.close();
      });
      down.watchForRetry(helloRetry -> {
        up.guard(null, null);
        if (helloRetry && client.isActive() && client.pipeline().get(PipelineNames.RELAY) != null
            && client.pipeline().get(PipelineNames.SNI_CHECK) == null) {
          client.pipeline().addBefore(PipelineNames.RELAY, PipelineNames.SNI_CHECK,
              new TunnelSniCheck(runtime, upstream, true));
        }
      });
    }
  }

  @Override
  protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out)
      throws Exception {
    if (refused) {
      // Closing: what follows is dropped, not looked at again (Netty's ClientHello reader
      // would find the same hello in it, and the refusal would be logged once per read).
      in.skipBytes(in.readableBytes());
      return;
    }
    while (retry && !checked && in.readableBytes() >= 5 && skipped < MAX_RECORDS_BEFORE_RETRY
        && (in.getUnsignedByte(in.readerIndex()) == 0x14
            || in.getUnsignedByte(in.readerIndex()) == 0x17)) {
      // before the second hello: middlebox-compatibility change_cipher_spec, early data the
      // server will skip - passed on whole, unchanged
      int len = 5 + in.getUnsignedShort(in.readerIndex() + 3);
      if (in.readableBytes() < len) {
        return;
      }
      out.add(in.readRetainedSlice(len));
      skipped++;
    }
    if (!checked && in.isReadable()) {
      int first = in.getUnsignedByte(in.readerIndex());
      if (first != 0x16 && requireMatch() && first >= 0x14 && first <= 0x18) {
        // A TLS record type (change_cipher_spec, alert, application_data, heartbeat): TLS that
        // does not start with its ClientHello. Some TLS servers skip such a record and then
        // read the hello behind it, which would go unchecked: refused, as a hello we cannot
        // read is. (A protocol that is not TLS does not start with these bytes.)
        if (in.readableBytes() < 2) {
          return; // its second byte tells
        }
        if (in.getUnsignedByte(in.readerIndex() + 1) == 3) {
          checked = true;
          refuse(ctx, ProxyRuntime.connection(ctx.channel()), "bad-request");
          in.skipBytes(in.readableBytes());
          return;
        }
      }
      checked = true;
      if (first != 0x16 && retry) {
        refuse(ctx, ProxyRuntime.connection(ctx.channel()), "bad-request"); // not a hello
        in.skipBytes(in.readableBytes());
        return;
      }
      if (first != 0x16) {
        ctx.pipeline().remove(this); // not TLS: nothing to check, the bytes go on unchanged
        return;
      }
      long ms = runtime.timeouts().clientHello().toMillis();
      timeout = ctx.executor().schedule(() -> {
        if (!refused) {
          // a ClientHello begun and not finished in timeouts.clientHello: nothing reached the
          // upstream; logged and counted as on tls-sni
          refuse(ctx, ProxyRuntime.connection(ctx.channel()), "client-hello-timeout");
        }
      }, ms, TimeUnit.MILLISECONDS);
    }
    super.decode(ctx, in, out);
  }

  @Override
  protected void handlerRemoved0(ChannelHandlerContext ctx) throws Exception {
    if (timeout != null) {
      timeout.cancel(false);
    }
    super.handlerRemoved0(ctx);
  }

  @Override
  protected Future<Void> lookup(ChannelHandlerContext ctx, ByteBuf body) {
    Connection c = ProxyRuntime.connection(ctx.channel());
    boolean require = requireMatch();
    if (body == null) {
      // A handshake record Netty cannot read as a ClientHello (another record version, say):
      // a TLS server that ignores the record version would read a name nobody checked.
      if (require) {
        refuse(ctx, c, "bad-request");
      }
      return ctx.executor().newSucceededFuture(null);
    }
    try {
      ClientHello hello = ClientHello.parse(body);
      sawHello = true;
      c.sni = hello.serverName();
      c.alpn = hello.alpn();
      c.ech = hello.ech() ? Boolean.TRUE : null;
      String sni = hello.serverName() == null ? null : HostName.normalize(hello.serverName());
      boolean mismatch = hello.serverName() != null
          ? !hello.serverNameIsAscii() || !c.host.equals(sni)
          : retry; // a second hello says what the first said (RFC 8446 section 4.1.2)
      String refusal = require && (mismatch || hello.serverNames() > 1)
          ? "sni-mismatch"
          : hello.ech() && runtime.tunnel().refuseEch() ? "ech-refused" : null;
      if (refusal != null) {
        refuse(ctx, c, refusal);
      }
    } catch (ClientHello.MalformedException e) {
      // A hello we cannot read (two server_name extensions, say) may still be one a TLS server
      // accepts, with a name nobody checked: refused while the SNI must match.
      if (require) {
        refuse(ctx, c, "bad-request");
      }
    }
    return ctx.executor().newSucceededFuture(null);
  }

  /** tunnel.requireSniMatch, or a second hello (whose name was decided with the first). */
  private boolean requireMatch() {
    return retry || runtime.tunnel().requireSniMatch();
  }

  private void refuse(ChannelHandlerContext ctx, Connection c, String reason) {
    refused = true;
    if (c != null) {
      c.reason = reason;
      runtime.decided(c);
    }
    ctx.close();
    upstream.close();
  }

  /**
   * A ClientHello over {@link TlsSniHandler#MAX_CLIENT_HELLO} or records Netty cannot frame:
   * Netty has closed the client; the tunnel ends, logged as a bad request. Any other error (the
   * client reset the connection) ends the tunnel as the client's closing would: with its close
   * line, not as a refusal.
   */
  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    Connection c = ProxyRuntime.connection(ctx.channel());
    if (!refused && c != null && cause instanceof io.netty.handler.codec.DecoderException) {
      refused = true;
      c.reason = "bad-request";
      runtime.decided(c);
    }
    ctx.close();
    upstream.close();
  }

  @Override
  protected void onLookupComplete(ChannelHandlerContext ctx, Future<Void> future) {
    if (ctx.channel().isActive() && !refused) {
      if (sawHello && !retry) {
        watchForRetry(runtime, ctx.channel(), upstream); // before the hello goes on
      }
      ctx.pipeline().remove(this);
    }
  }
}
