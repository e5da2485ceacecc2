using System.Globalization;
using System.Linq.Expressions;
using System.Reflection;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Application;

/// <summary>
/// Turns a handler delegate into an invoker once, at map time, as minimal APIs do: each parameter gets its source from
/// its type, name and attributes (reflection here only), and an expression tree compiled to one delegate calls the
/// handler and adapts its result. Per message nothing is looked up by reflection.
/// <list type="bullet">
/// <item><see cref="StompMessageContext"/>, <see cref="CancellationToken"/> (the session's <see cref="StompMessageContext.Aborted"/>),
/// <see cref="ClaimsPrincipal"/>, <see cref="IServiceProvider"/>;</item>
/// <item>a name of the template (<c>{room}</c>): its value, as a string or any <see cref="IParsable{TSelf}"/> type (int, Guid...);</item>
/// <item><c>[FromServices]</c>, or a type registered in DI: the service, from the handler's scope;</item>
/// <item>otherwise the body (one parameter at most): <see cref="string"/> as UTF-8, <see cref="ReadOnlyMemory{T}"/> or
/// <c>byte[]</c> as it is, any other type as JSON when <c>content-type</c> is JSON or absent.</item>
/// </list>
/// The result: nothing for <c>void</c>, <see cref="Task"/>, <see cref="ValueTask"/>; the value (awaited) otherwise.
/// </summary>
internal static class HandlerBinder
{
    private static readonly MethodInfo RouteValueMethod = typeof(StompMessageContext).GetMethod(nameof(StompMessageContext.RouteValue), BindingFlags.Instance | BindingFlags.NonPublic)!;

    public static StompEndpoint Compile(Delegate handler, DestinationTemplate template, StompHandlerKind kind, IServiceProviderIsService? isService)
    {
        ArgumentNullException.ThrowIfNull(handler);
        var invoke = handler.GetType().GetMethod("Invoke")!;
        var invokeParameters = invoke.GetParameters();
        var parameters = handler.Method.GetParameters();
        if (parameters.Length == invokeParameters.Length + 1)
        {
            parameters = parameters[1..]; // a delegate closed over a static method's first argument
        }

        var context = Expression.Parameter(typeof(StompMessageContext), "context");
        var arguments = new Expression[invokeParameters.Length];
        string? bodyParameter = null;
        for (var i = 0; i < invokeParameters.Length; i++)
        {
            var parameter = i < parameters.Length ? parameters[i] : invokeParameters[i];
            var type = invokeParameters[i].ParameterType;
            var source = Bind(parameter, type, template, context, isService, out var isBody);
            if (isBody)
            {
                if (kind == StompHandlerKind.Subscription)
                {
                    throw Unbindable(template, parameter, "a SUBSCRIBE has no body; take route values, services or the StompMessageContext");
                }

                if (bodyParameter is not null)
                {
                    throw Unbindable(template, parameter, $"the body already binds to '{bodyParameter}' (one body parameter at most; mark services [FromServices])");
                }

                bodyParameter = parameter.Name;
            }

            arguments[i] = source;
        }

        var call = Expression.Invoke(Expression.Constant(handler, handler.GetType()), arguments);
        var body = AdaptResult(call, invoke.ReturnType);
        var invoker = Expression.Lambda<Func<StompMessageContext, ValueTask<object?>>>(body, context).Compile();
        return new StompEndpoint(template, kind, invoker);
    }

    private static Expression Bind(ParameterInfo parameter, Type type, DestinationTemplate template, ParameterExpression context, IServiceProviderIsService? isService, out bool isBody)
    {
        isBody = false;
        if (type == typeof(StompMessageContext))
        {
            return context;
        }

        if (type == typeof(CancellationToken))
        {
            return Expression.Property(context, nameof(StompMessageContext.Aborted));
        }

        if (type == typeof(ClaimsPrincipal))
        {
            return Expression.Property(context, nameof(StompMessageContext.Principal));
        }

        if (type == typeof(IServiceProvider))
        {
            return Expression.Property(context, nameof(StompMessageContext.Services));
        }

        var attributes = parameter.GetCustomAttributes(inherit: true);
        if (attributes.OfType<IFromServiceMetadata>().Any())
        {
            return Service(parameter, type, context);
        }

        var routeIndex = IndexOf(template.ParameterNames, parameter.Name);
        if (routeIndex >= 0 && !attributes.OfType<IFromBodyMetadata>().Any())
        {
            return RouteValue(parameter, type, template, context, routeIndex);
        }

        if (!attributes.OfType<IFromBodyMetadata>().Any() && isService?.IsService(type) == true)
        {
            return Service(parameter, type, context);
        }

        isBody = true;
        if (type == typeof(string))
        {
            return Expression.Call(typeof(HandlerBinder).GetMethod(nameof(BodyText), BindingFlags.Static | BindingFlags.NonPublic)!, context);
        }

        if (type == typeof(ReadOnlyMemory<byte>))
        {
            return Expression.Property(context, nameof(StompMessageContext.Body));
        }

        if (type == typeof(byte[]))
        {
            return Expression.Call(typeof(HandlerBinder).GetMethod(nameof(BodyArray), BindingFlags.Static | BindingFlags.NonPublic)!, context);
        }

        if (type.IsInterface || type.IsAbstract || type.IsPointer || type.IsByRef)
        {
            throw Unbindable(template, parameter, $"{type.Name} is not a template value, a registered service or a type JSON can make");
        }

        var required = !IsNullable(parameter, type);
        return Expression.Call(
            typeof(HandlerBinder).GetMethod(nameof(BodyJson), BindingFlags.Static | BindingFlags.NonPublic)!.MakeGenericMethod(type),
            context, Expression.Constant(parameter.Name ?? "body"), Expression.Constant(required));
    }

    private static UnaryExpression Service(ParameterInfo parameter, Type type, ParameterExpression context) =>
        Expression.Convert(
            Expression.Call(typeof(HandlerBinder).GetMethod(nameof(GetService), BindingFlags.Static | BindingFlags.NonPublic)!,
                context, Expression.Constant(type), Expression.Constant(parameter.Name ?? type.Name), Expression.Constant(!IsNullable(parameter, type))),
            type);

    private static Expression RouteValue(ParameterInfo parameter, Type type, DestinationTemplate template, ParameterExpression context, int index)
    {
        var value = Expression.Call(context, RouteValueMethod, Expression.Constant(index));
        if (type == typeof(string))
        {
            return value;
        }

        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (!target.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IParsable<>) && i.GenericTypeArguments[0] == target))
        {
            throw Unbindable(template, parameter, $"template value '{{{template.ParameterNames[index]}}}' binds to string or an IParsable type, not {type.Name}");
        }

        var parse = Expression.Call(
            typeof(HandlerBinder).GetMethod(nameof(ParseRouteValue), BindingFlags.Static | BindingFlags.NonPublic)!.MakeGenericMethod(target),
            value, Expression.Constant(template.ParameterNames[index]));
        return target == type ? parse : Expression.Convert(parse, type);
    }

    private static Expression AdaptResult(Expression call, Type returnType)
    {
        string adapter;
        Type[] generic = [];
        if (returnType == typeof(void))
        {
            return Expression.Block(call, Expression.Constant(new ValueTask<object?>((object?)null)));
        }
        else if (returnType == typeof(Task))
        {
            adapter = nameof(FromTask);
        }
        else if (returnType == typeof(ValueTask))
        {
            adapter = nameof(FromValueTask);
        }
        else if (returnType.IsGenericType && returnType.GetGenericTypeDefinition() == typeof(Task<>))
        {
            adapter = nameof(FromTaskOf);
            generic = returnType.GenericTypeArguments;
        }
        else if (returnType.IsGenericType && returnType.GetGenericTypeDefinition() == typeof(ValueTask<>))
        {
            adapter = nameof(FromValueTaskOf);
            generic = returnType.GenericTypeArguments;
        }
        else
        {
            return Expression.New(typeof(ValueTask<object?>).GetConstructor([typeof(object)])!, Expression.Convert(call, typeof(object)));
        }

        var method = typeof(HandlerBinder).GetMethod(adapter, BindingFlags.Static | BindingFlags.NonPublic)!;
        return Expression.Call(generic.Length == 0 ? method : method.MakeGenericMethod(generic), call);
    }

    private static ArgumentException Unbindable(DestinationTemplate template, ParameterInfo parameter, string why) =>
        new($"handler for '{template}': cannot bind parameter '{parameter.Name}': {why}", nameof(parameter));

    private static int IndexOf(IReadOnlyList<string> names, string? name)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (string.Equals(names[i], name, StringComparison.OrdinalIgnoreCase))
            {
                return i;
            }
        }

        return -1;
    }

    private static bool IsNullable(ParameterInfo parameter, Type type) =>
        parameter.HasDefaultValue || Nullable.GetUnderlyingType(type) is not null ||
        (!type.IsValueType && new NullabilityInfoContext().Create(parameter).WriteState == NullabilityState.Nullable);

    // Called by the compiled invokers.

    private static object? GetService(StompMessageContext context, Type type, string name, bool required)
    {
        var service = context.Services.GetService(type);
        if (service is null && required)
        {
            throw new InvalidOperationException($"no service of type {type.Name} is registered for parameter '{name}'");
        }

        return service;
    }

    private static T ParseRouteValue<T>(string value, string name)
        where T : IParsable<T> =>
        T.TryParse(value, CultureInfo.InvariantCulture, out var parsed)
            ? parsed
            : throw new StompApplicationException($"'{value}' is not a valid {name}");

    private static string BodyText(StompMessageContext context) => Encoding.UTF8.GetString(context.Body.Span);

    private static byte[] BodyArray(StompMessageContext context) => context.Body.ToArray();

    private static T? BodyJson<T>(StompMessageContext context, string name, bool required)
    {
        if (context.ContentType is { } contentType && !IsJson(contentType))
        {
            throw new StompApplicationException($"'{name}' is read as JSON: send content-type application/json, not '{contentType}'");
        }

        if (context.Body.IsEmpty)
        {
            return required ? throw new StompApplicationException($"'{name}' is required: the message has no body") : default;
        }

        T? value;
        try
        {
            value = JsonSerializer.Deserialize<T>(context.Body.Span, context.JsonOptions);
        }
        catch (JsonException)
        {
            throw new StompApplicationException($"the body is not valid JSON for '{name}'");
        }

        return value is null && required ? throw new StompApplicationException($"'{name}' is required: the body is null") : value;
    }

    /// <summary><c>application/json</c>, <c>text/json</c> or any <c>+json</c> type, parameters aside.</summary>
    internal static bool IsJson(string contentType)
    {
        var type = contentType.AsSpan();
        var semicolon = type.IndexOf(';');
        type = (semicolon < 0 ? type : type[..semicolon]).Trim();
        return type.Equals("application/json", StringComparison.OrdinalIgnoreCase) || type.Equals("text/json", StringComparison.OrdinalIgnoreCase) ||
            type.EndsWith("+json", StringComparison.OrdinalIgnoreCase);
    }

    private static ValueTask<object?> FromTask(Task task) => task.IsCompletedSuccessfully ? new((object?)null) : Await(task);

    private static async ValueTask<object?> Await(Task task)
    {
        await task.ConfigureAwait(false);
        return null;
    }

    private static ValueTask<object?> FromValueTask(ValueTask task) => task.IsCompletedSuccessfully ? new((object?)null) : Await(task.AsTask());

    private static ValueTask<object?> FromTaskOf<T>(Task<T> task) => task.IsCompletedSuccessfully ? new(task.Result) : AwaitOf(task);

    private static async ValueTask<object?> AwaitOf<T>(Task<T> task) => await task.ConfigureAwait(false);

    private static ValueTask<object?> FromValueTaskOf<T>(ValueTask<T> task) => task.IsCompletedSuccessfully ? new(task.Result) : AwaitOf(task.AsTask());
}
