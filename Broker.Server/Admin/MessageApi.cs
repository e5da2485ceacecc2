using Broker.Application;
using Broker.Resources;
using Broker.Sessions;

namespace Broker.Server.Admin;

/// <summary>
/// Sending messages over the HTTP API (behind <see cref="ApiKeyFilter"/>), through <see cref="IStompMessenger"/>:
/// <c>POST /api/publish</c> to a topic or queue, <c>POST /api/users/{login}/messages</c> to every session of a user.
/// The key is an administrator's credential: the destination authorization rules for clients do not apply, but
/// every other rule of a client's SEND does (destination syntax and size, <c>Broker:MaxFrameSize</c>, header limits,
/// a full queue, the memory limit). A refusal is a status with <c>{ "error", "limit"? }</c>.
/// </summary>
internal sealed class MessageApi(IStompMessenger messenger, StompSessionServices services, ILogger<MessageApi> logger)
{
    public void Map(RouteGroupBuilder api)
    {
        api.MapPost("/publish", PublishAsync);
        api.MapPost("/users/{login}/messages", SendToUserAsync);
    }

    // POST /api/publish { "destination": "/topic/<key>" | "/queue/<name>", "body", ... }
    private async Task<IResult> PublishAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var (message, refused) = await ReadAsync(request, cancellationToken);
        if (refused is not null)
        {
            return refused.ToResult();
        }

        if (Routing.Destinations.IsUser(message!.Destination))
        {
            return ApiProblem.Bad($"destination: '{ApiMessage.Shorten(message.Destination)}' is a user destination; POST /api/users/{{login}}/messages with \"destination\": \"/queue/<name>\"").ToResult();
        }

        return await DeliverAsync(message, async () =>
        {
            await messenger.PublishAsync(message!.Destination, message.Payload, cancellationToken);
            return Results.Json(new PublishedResponse(message.Destination, message.Payload.Body.Length), statusCode: StatusCodes.Status202Accepted);
        });
    }

    // POST /api/users/{login}/messages { "destination": "/queue/<name>", "body", ... }: as a SEND to /user/<login>/queue/<name>.
    private async Task<IResult> SendToUserAsync(string login, HttpRequest request, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(login) || login.Length > AdminApi.MaxLoginLength)
        {
            return ApiProblem.Bad($"login: give the user's login (1 to {AdminApi.MaxLoginLength} characters)").ToResult();
        }

        var (message, refused) = await ReadAsync(request, cancellationToken);
        if (refused is not null)
        {
            return refused.ToResult();
        }

        return await DeliverAsync(message!, async () =>
        {
            var sessions = await messenger.SendToUserAsync(login, message!.Destination, message.Payload, cancellationToken);
            return Results.Json(new SentToUserResponse(login, message.Destination, message.Payload.Body.Length, sessions), statusCode: StatusCodes.Status202Accepted);
        });
    }

    private async Task<(ApiMessage? Message, ApiProblem? Refused)> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var options = services.Options;
        var limit = ApiMessage.RequestLimit(options);
        var bytes = await ApiMessage.ReadRequestAsync(request, limit, cancellationToken);
        if (bytes is null)
        {
            return (null, Count(ApiProblem.TooLarge(
                Protocol.StompReaderLimits.MaxFrameSizeName,
                $"limit exceeded: {Protocol.StompReaderLimits.MaxFrameSizeName} (the request is over {limit} bytes, twice Broker:MaxFrameSize = {options.MaxFrameSize} and 64 KiB)")));
        }

        return ApiMessage.TryRead(bytes, options, out var message, out var problem) ? (message, null) : (null, Count(problem!));
    }

    // The broker's answers, as a client's SEND gets them in an ERROR: a bad destination, a full queue, the memory limit.
    private async Task<IResult> DeliverAsync(ApiMessage message, Func<Task<IResult>> deliver)
    {
        // Above the high watermark a client's SEND is flow-controlled; an HTTP caller is told to come back instead.
        if (services.Memory.IsAboveHighWatermark)
        {
            return Unavailable(new ApiProblem(StatusCodes.Status503ServiceUnavailable,
                $"limit exceeded: {LimitNames.MemoryLimit} (the broker holds more than its memory limit, Broker:MemoryLimit; try again later)", LimitNames.MemoryLimit));
        }

        try
        {
            return await deliver();
        }
        catch (ArgumentException ex)
        {
            return ApiProblem.Bad($"{(ex.ParamName == "login" ? "login" : "destination")}: {ApiMessage.FirstSentence(ex.Message)}").ToResult();
        }
        catch (LimitExceededException ex) when (ex.Limit == LimitNames.MemoryLimit)
        {
            return Unavailable(new ApiProblem(StatusCodes.Status503ServiceUnavailable, ex.Message, ex.Limit));
        }
        catch (LimitExceededException ex)
        {
            return Count(new ApiProblem(StatusCodes.Status409Conflict, ex.Message, ex.Limit)).ToResult();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A failure inside the server (a broker, the relay, a store): logged, and never its message to the caller.
            Log.PublishFailed(logger, ex, message.Destination);
            return Unavailable(new ApiProblem(StatusCodes.Status503ServiceUnavailable, "the broker could not take the message; see the server log"));
        }
    }

    private RetryAfter Unavailable(ApiProblem problem) => new(Count(problem).ToResult());

    private ApiProblem Count(ApiProblem problem)
    {
        if (problem.Limit is { } limit)
        {
            services.Metrics.LimitExceeded(limit);
        }

        return problem;
    }

    /// <summary>A 503 with <c>Retry-After: 1</c>.</summary>
    private sealed class RetryAfter(IResult inner) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.Headers.RetryAfter = "1";
            return inner.ExecuteAsync(httpContext);
        }
    }
}
