// Tornado's demos/chat/static/chat.js (and demos/websocket's), without
// jQuery. Copyright 2009 Facebook; Licensed under the Apache License 2.0.
"use strict";

document.addEventListener("DOMContentLoaded", function() {
    var form = document.getElementById("messageform");
    form.addEventListener("submit", function(event) {
        event.preventDefault();
        newMessage(form);
    });
    document.getElementById("message").select();
    if (new URLSearchParams(location.search).get("transport") === "ws") {
        updater.start();
    } else {
        updater.poll();
    }
});

function newMessage(form) {
    var message = formToDict(form);
    var input = form.querySelector("input[type=text]");
    if (updater.socket) {
        updater.socket.send(JSON.stringify(message));
        input.value = "";
        input.select();
        return;
    }
    var disabled = form.querySelector("input[type=submit]");
    disabled.disabled = true;
    postJSON("/a/message/new", message, function(response) {
        updater.showMessage(response);
        input.value = "";
        input.select();
        disabled.disabled = false;
    });
}

function getCookie(name) {
    var r = document.cookie.match("\\b" + name + "=([^;]*)\\b");
    return r ? r[1] : undefined;
}

function postJSON(url, args, callback, onError) {
    args._xsrf = getCookie("_xsrf");
    fetch(url, {method: "POST", body: new URLSearchParams(args)})
        .then(function(response) {
            if (!response.ok) throw new Error(response.status);
            return response.json();
        })
        .then(callback)
        .catch(function(error) {
            console.log("ERROR:", error);
            if (onError) onError(error);
        });
}

function formToDict(form) {
    var json = {};
    new FormData(form).forEach(function(value, name) { json[name] = value; });
    if (json.next) delete json.next;
    return json;
}

var updater = {
    errorSleepTime: 500,
    cursor: null,
    socket: null,

    start: function() {
        var scheme = location.protocol === "https:" ? "wss://" : "ws://";
        updater.socket = new WebSocket(scheme + location.host + "/chatsocket");
        updater.socket.onmessage = function(event) {
            updater.showMessage(JSON.parse(event.data));
        };
    },

    poll: function() {
        var args = {};
        if (updater.cursor) args.cursor = updater.cursor;
        postJSON("/a/message/updates", args, updater.onSuccess, updater.onError);
    },

    onSuccess: function(response) {
        updater.newMessages(response);
        updater.errorSleepTime = 500;
        window.setTimeout(updater.poll, 0);
    },

    onError: function() {
        updater.errorSleepTime *= 2;
        console.log("Poll error; sleeping for", updater.errorSleepTime, "ms");
        window.setTimeout(updater.poll, updater.errorSleepTime);
    },

    newMessages: function(response) {
        if (!response.messages || !response.messages.length) return;
        var messages = response.messages;
        updater.cursor = messages[messages.length - 1].id;
        console.log(messages.length, "new messages, cursor:", updater.cursor);
        for (var i = 0; i < messages.length; i++) {
            updater.showMessage(messages[i]);
        }
    },

    showMessage: function(message) {
        if (document.getElementById("m" + message.id)) return;
        var holder = document.createElement("div");
        holder.innerHTML = message.html;
        document.getElementById("inbox").appendChild(holder.firstElementChild);
    }
};
