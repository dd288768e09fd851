// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { MeshagentError } from "@meshagent-oss/sdk";
import { ConfirmButton, ErrorBox, Form, Field, Pager } from "../src/ui";
import { nextDelay } from "../src/hooks";
import { match } from "../src/router";

afterEach(cleanup);

describe("console building blocks", () => {
  it("ErrorBox shows the server's message, code and request id", () => {
    render(<ErrorBox error={new MeshagentError({ status: 409, code: "conflict", message: "a room named x exists", request: "POST /x", requestId: "r1" })} />);
    expect(screen.getByRole("alert").textContent).toContain("a room named x exists (conflict, HTTP 409, request r1)");
  });

  it("Form shows a failure and keeps what was typed", async () => {
    render(
      <Form submit="Save" onSubmit={async () => Promise.reject(new Error("name is required"))}>
        <Field label="Name" defaultValue="abc" />
      </Form>,
    );
    fireEvent.click(screen.getByRole("button", { name: "Save" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("name is required"));
    expect((screen.getByLabelText("Name") as HTMLInputElement).value).toBe("abc");
  });

  it("ConfirmButton asks before it acts", async () => {
    let n = 0;
    render(<ConfirmButton label="Delete" confirm="Delete the room?" onConfirm={async () => void n++} />);
    fireEvent.click(screen.getByRole("button", { name: "Delete" }));
    expect(n).toBe(0);
    fireEvent.click(screen.getByRole("button", { name: "Yes, delete" }));
    await waitFor(() => expect(n).toBe(1));
  });

  it("Pager disables what cannot be reached", () => {
    render(<Pager offset={0} limit={50} count={50} more onChange={() => {}} />);
    expect((screen.getByRole("button", { name: "Previous" }) as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByRole("button", { name: "Next" }) as HTMLButtonElement).disabled).toBe(false);
  });

  it("polls back off when nothing changes and come back when something does", () => {
    const b = { minMs: 1000, maxMs: 8000 };
    expect([1000, 2000, 4000, 8000].map((d) => nextDelay(d, false, b))).toEqual([2000, 4000, 8000, 8000]);
    expect(nextDelay(8000, true, b)).toBe(1000);
  });

  it("routes match with decoded parameters", () => {
    expect(match("/projects/:project/rooms/:room", "/projects/p1/rooms/a%20b")).toEqual({ project: "p1", room: "a b" });
    expect(match("/projects/:project/rooms", "/projects/p1/rooms/x")).toBeNull();
  });
});
