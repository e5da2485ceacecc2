// The README's "Application API" sample, compiled here and run by ChatSampleTests and the stomp.js and stomp.py
// scenarios (ChatSampleInteropTests). ReadmeSampleTests holds README.md to the marked regions, character for character.
// <chat-sample>
using System.Collections.Concurrent;
using Broker;
using Broker.Application;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Chat;

public static class ChatApp
{
    public static IServiceCollection AddChat(this IServiceCollection services)
    {
        services.AddStompBroker();
        services.AddSingleton<ChatRoster>();
        services.AddSingleton<IStompSessionObserver>(sp => sp.GetRequiredService<ChatRoster>());
        return services;
    }

    public static WebApplication MapChat(this WebApplication app)
    {
        // SEND /app/chat/{room} {"text":"..."}: the room's topic gets the line; the sender alone gets the return
        // value, on its reply-to destination or else /user/queue/replies.
        app.MapStompMessage("/chat/{room}", async (string room, ChatMessage message, StompMessageContext context, IStompMessenger messenger) =>
        {
            if (string.IsNullOrWhiteSpace(message.Text))
            {
                throw new StompApplicationException("a chat message needs text"); // to the sender, on /user/queue/errors
            }

            var line = new ChatLine(room, context.Login ?? "anonymous", message.Text, DateTimeOffset.UtcNow);
            await messenger.PublishAsync($"/topic/chat.{room}", line, context.Aborted);
            return new ChatPosted(room, line.SentAt);
        });

        // SUBSCRIBE /app/chat/online: who is online, once, as the subscription's first message.
        app.MapStompSubscription("/chat/online", (ChatRoster roster) => roster.Online());

        // A server-side notification: an HTTP endpoint posting into a room.
        app.MapPost("/rooms/{room}/announcements", async (string room, ChatMessage announcement, IStompMessenger messenger) =>
        {
            await messenger.PublishAsync($"/topic/chat.{room}", new ChatLine(room, "server", announcement.Text, DateTimeOffset.UtcNow));
            return Results.Accepted();
        });

        // ... and one to every session of one user, on /user/queue/notices.
        app.MapPost("/users/{login}/notices", async (string login, ChatMessage notice, IStompMessenger messenger) =>
            Results.Ok(new { sessions = await messenger.SendToUserAsync(login, "/queue/notices", notice) }));
        return app;
    }
}

public sealed record ChatMessage(string Text);

public sealed record ChatLine(string Room, string From, string Text, DateTimeOffset SentAt);

public sealed record ChatPosted(string Room, DateTimeOffset SentAt);

// Session events: who is online (a user with two tabs open counts once).
public sealed class ChatRoster : IStompSessionObserver
{
    private readonly ConcurrentDictionary<string, int> _sessions = new();

    public void OnConnected(StompSessionInfo session) => Count(session, +1);

    public void OnResumed(StompSessionInfo session, bool recovered) => Count(session, +1);

    public void OnDisconnected(StompSessionInfo session, StompDisconnectReason reason) => Count(session, -1);

    public string[] Online() => [.. _sessions.Where(user => user.Value > 0).Select(user => user.Key).Order()];

    private void Count(StompSessionInfo session, int change)
    {
        if (session.Login is { } login)
        {
            _sessions.AddOrUpdate(login, Math.Max(change, 0), (_, count) => count + change);
        }
    }
}
// </chat-sample>

/// <summary>The README's Program.cs for the sample: compiled (its region is held to the README), not run (the tests host the app on their own ports).</summary>
internal static class ChatProgram
{
    public static void Run(string[] args)
    {
        // <chat-program>
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddChat();
        var app = builder.Build();
        app.MapStomp("/ws");
        app.MapChat();
        app.Run();
        // </chat-program>
    }
}
