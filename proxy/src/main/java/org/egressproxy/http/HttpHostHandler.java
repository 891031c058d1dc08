package org.egressproxy.http;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.util.ReferenceCountUtil;
import org.egressproxy.net.ProxyRuntime;

/**
 * The {@code http-host} listener (transparent HTTP): every request is decided on its
 * {@code Host} and forwarded to {@code Host:upstreamPort}; a refused one gets a 403, including
 * the second, third ... request on a kept-alive connection.
 */
public final class HttpHostHandler extends ChannelInboundHandlerAdapter {
  private final ProxyRuntime runtime;
  private final HttpForwarder forwarder;

  public HttpHostHandler(ProxyRuntime runtime, int upstreamPort) {
    this.runtime = runtime;
    this.forwarder = new HttpForwarder(runtime, HttpForwarder.Mode.HOST_HEADER, upstreamPort);
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (msg instanceof HttpRequest req && req.decoderResult().cause() != null) {
      Throwable failure = req.decoderResult().cause();
      ReferenceCountUtil.release(msg);
      HttpResponses.refuseMalformed(ctx, runtime, failure);
      return;
    }
    forwarder.channelRead(ctx, msg);
  }

  @Override
  public void channelInactive(ChannelHandlerContext ctx) {
    forwarder.channelInactive(ctx);
    ctx.fireChannelInactive();
  }

  @Override
  public void channelWritabilityChanged(ChannelHandlerContext ctx) {
    forwarder.channelWritabilityChanged(ctx);
    ctx.fireChannelWritabilityChanged();
  }

  @Override
  public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
    ctx.close();
  }
}
